"""rivya-hooks: receive, verify, process and reconcile Rivya webhooks."""

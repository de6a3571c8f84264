"""Prometheus metrics of every role.

`directory` chooses where forked processes write their samples and imports nothing of
prometheus-client; `families` has what every role exports, `web`, `worker` and `relay` each
role's own families; `exposition` serves them.
"""

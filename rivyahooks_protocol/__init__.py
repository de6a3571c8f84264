"""Rivya's protocol as this service speaks it: contract, envelope, generation documents,
timestamps, signatures, errors, backoff, the client and its transport, downloads. It imports
nothing of ours, so anything may use it."""

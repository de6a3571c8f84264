"""Rivya's protocol as this service speaks it: contract, envelope, signatures, errors, client,
downloads. It imports nothing of ours, so anything may use it."""

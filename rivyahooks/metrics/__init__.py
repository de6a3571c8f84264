"""Prometheus metrics of every role.

`directory` chooses where forked processes write their samples and imports nothing of
prometheus-client; `families` declares every metric; `exposition` serves them.
"""

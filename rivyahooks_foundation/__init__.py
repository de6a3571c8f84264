"""What every process of rivya-hooks stands on: settings, logs, traces, metrics, fault points.

It imports nothing of ours but the Rivya protocol, and nothing above it imports back.
"""

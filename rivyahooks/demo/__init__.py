"""`make demo`: the whole service end to end on embedded defaults, in under two minutes.

Starts the simulator, the receiver (gunicorn), the relay, a worker, outbound and beat as
real processes with the Procfile's commands, on SQLite and the SQLite-backed broker under
var/demo. Creates generations while the simulator drops and duplicates deliveries, waits,
reconciles, then checks every generation against the simulator and prints what happened.
"""

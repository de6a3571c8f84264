"""Task names: the stable contract between the processes that enqueue and the worker.

The receiver imports only this module from `tasks`, so the web process never loads the
worker's code. Renaming a task is a breaking change for messages already in the broker.
"""

from typing import Final

PROCESS_EVENT: Final = "events.process"
SWEEP_EVENTS: Final = "events.sweep"
RECONCILE: Final = "reconcile.run"
PURGE: Final = "retention.purge"
DELIVER_OUTBOUND: Final = "outbound.deliver"
# The queue outbound deliveries go to: only the `outbound` role consumes it, so a slow app
# endpoint never holds a slot of the worker that processes Rivya's events.
OUTBOUND_QUEUE: Final = "outbound"

"""Task names: the stable contract between the processes that enqueue and the worker.

The receiver imports only this module from `tasks`, so the web process never loads the
worker's code. Renaming a task is a breaking change for messages already in the broker.
"""

from typing import Final

PROCESS_EVENT: Final = "events.process"
SWEEP_EVENTS: Final = "events.sweep"
RECONCILE: Final = "reconcile.run"
PURGE: Final = "retention.purge"

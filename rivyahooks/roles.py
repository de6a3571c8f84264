"""Each role's command line: what the Procfile says, kept in the package for installs.

An installed wheel has no Procfile, yet `rivya-hooks serve` must start every role with the
very line a platform runs; so the lines live here, the Procfile holds exactly these lines
(a test keeps them equal), and the demo and `serve` run them through bash as a platform does.
"""

from __future__ import annotations

# release runs to completion before the others start; the others run side by side.
RELEASE = "release"
# The long-running roles in the order they are stopped: web first, so no new delivery is
# taken, then the relay (nothing new is published), the worker and outbound (running tasks
# and POSTs finish), and beat last.
SERVICE_ROLES = ("web", "relay", "worker", "outbound", "beat")

ROLES: dict[str, str] = {
    RELEASE: "exec rivya-hooks db upgrade",
    "web": "exec gunicorn -c python:rivyahooks.gunicorn_conf 'receiver:create_app()'",
    "relay": "exec rivya-hooks relay",
    # Without -Q a worker consumes Celery's default queue only (no task_queues or routes are
    # configured), never the outbound queue: a slow app endpoint cannot hold its slots.
    "worker": "exec celery --quiet -A tasks.worker worker --loglevel INFO "
    "--concurrency ${WORKER_CONCURRENCY:-4}",
    # Outbound deliveries alone, in processes: OUTBOUND_MAX_IN_FLIGHT bounds how many of them
    # one slow endpoint holds. (Celery's thread pool on the Redis transport left deliveries
    # received and never run while its threads sat idle.)
    # A node name of its own, so a worker and this one on one host never share one.
    "outbound": "exec celery --quiet -A tasks.worker worker -Q outbound "
    "--concurrency ${OUTBOUND_CONCURRENCY:-8} --loglevel INFO -n outbound@%h",
    # DATA_DIR: where beat keeps its schedule (`rivya-hooks serve --data-dir` sets it).
    "beat": 'mkdir -p "${DATA_DIR:-var}" && exec celery --quiet -A tasks.worker beat '
    '--loglevel INFO --schedule "${DATA_DIR:-var}/celerybeat-schedule"',
}


def procfile_text() -> str:
    """Return the Procfile these lines make, one `role: command` line each."""
    return "".join(f"{role}: {command}\n" for role, command in ROLES.items())

"""gunicorn settings for the web role (see the Procfile `web` line).

Read by gunicorn at start; values come from the environment so one file serves every host.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
# Threads overlap the database and broker round trips of one worker's requests; processes
# use the cores. Receiver requests are short, so a few threads per process suffice.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Rivya's delivery timeout is short; a request that takes longer than this has failed anyway.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Bounded request lines and headers: part of not letting a forged request cost much.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG") == "1" else None
errorlog = "-"
# Build the app (and its engine) in each worker after the fork, never shared across them.
preload_app = False

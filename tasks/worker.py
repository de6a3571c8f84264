"""Entry point of the worker and beat processes (see the Procfile).

celery -A tasks.worker worker
celery -A tasks.worker beat

A setting these processes cannot run with stops them here, before celery starts: one line
naming the variable, and exit status 2.
"""

from rivyahooks.console import fail_config
from rivyahooks.logconfig import configure_logging
from rivyahooks.settings import Settings, SettingsError
from tasks.celery_app import create_celery

try:
    settings = Settings.from_env()
    # Without a key every event would fail its first call to Rivya and end `dead`.
    settings.require_api_key()
except SettingsError as exc:
    fail_config(str(exc))
configure_logging(settings.log_level)
app = create_celery(settings)

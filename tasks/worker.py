"""Entry point of the worker, outbound and beat processes (see the Procfile).

celery -A tasks.worker worker
celery -A tasks.worker worker -Q outbound --pool threads
celery -A tasks.worker beat

A setting these processes cannot run with stops them here, before celery starts: one error
line naming the variable and what to do next, and exit status 2.
"""

# prometheus-client fixes its mode when it is first imported, so the metrics directory is
# chosen before anything that imports it (the prefork children write, the main one serves).
from rivyahooks_foundation.metrics.directory import use_own_metrics_directory
from rivyahooks_foundation.settings import (
    EXIT_CONFIG,
    FIX_SETTING,
    Settings,
    SettingsError,
    early_value,
)

use_own_metrics_directory("celery", early_value("metrics_dir"))

import logging  # noqa: E402

from models.data_keys import check_data_keys  # noqa: E402
from rivyahooks_foundation.logconfig import configure_logging  # noqa: E402
from tasks.celery_app import create_celery  # noqa: E402
from tasks.runtime import TimeLimits  # noqa: E402

# Configured before the settings are checked, so their failure is a line in this format.
configure_logging(early_value("log_level"), early_value("log_format"), role="celery")
try:
    settings = Settings.from_env()
    # Without a key every event would fail its first call to Rivya and end `dead`.
    settings.require_api_key()
    # An attempt must be over (or killed) before the broker hands its message to another.
    TimeLimits.from_settings(settings)
    # Rows sealed under a key no longer configured: one line here, not a failure per task.
    check_data_keys(settings)
except SettingsError as exc:
    logging.getLogger(__name__).error("configuration error: %s", exc, extra={"next": FIX_SETTING})
    raise SystemExit(EXIT_CONFIG) from None
app = create_celery(settings)

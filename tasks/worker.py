"""Entry point of the worker and beat processes (see the Procfile).

celery -A tasks.worker worker
celery -A tasks.worker beat
"""

from rivyahooks.logconfig import configure_logging
from rivyahooks.settings import Settings
from tasks.celery_app import create_celery

settings = Settings.from_env()
configure_logging(settings.log_level)
app = create_celery(settings)

"""Purge events older than a few seconds, as beat's retention does with days.

`rivya-hooks purge` will not go below a day, so the soak calls tasks.retention.purge itself,
on the ops host, with the role's settings: `python -m tests.soak.purge SECONDS`.
"""

from __future__ import annotations

import datetime as dt
import sys

from models.db import make_engine, make_session_factory
from rivyahooks_foundation.settings import Settings
from storage import open_storage
from tasks.retention import purge


def main(seconds: str) -> None:
    settings = Settings.from_env()
    sessions = make_session_factory(make_engine(settings.database_url))
    summary = purge(
        sessions,
        open_storage(settings),
        events_older_than=dt.timedelta(seconds=float(seconds)),
        results_older_than=None,
    )
    print(summary.as_dict())


if __name__ == "__main__":
    main(sys.argv[1])

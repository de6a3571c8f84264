"""`rivya-hooks relay`: the Procfile role that publishes stored events to the broker."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click

from rivyahooks.output import Context, fail_config, pass_context

log = logging.getLogger(__name__)


@click.command()
@pass_context
def relay(ctx: Context) -> None:
    """Publish stored events to the broker until stopped (the Procfile's relay role).

    Every other part of the service only stores events; this is the one process that
    publishes them, in batches, marking each `enqueued` once the broker took it. Safe to run
    several. When the broker or the database is down it says so once, waits and resumes by
    itself. SIGTERM or Ctrl-C stop it after the batch in hand (exit 0).
    """
    from models.data_keys import MissingDataKey, check_data_keys
    from rivyahooks_foundation.logconfig import configure_logging
    from rivyahooks_foundation.metrics.exposition import serve
    from tasks.relay import Relay

    settings = ctx.settings
    try:
        # The relay reads no body, but a deployment whose keys cannot open its rows is
        # misconfigured for every role: said once here too, before anything runs.
        check_data_keys(settings)
    except MissingDataKey as exc:
        fail_config(str(exc))
    configure_logging(settings.log_level, settings.log_format, role="relay")
    # One process: its own registry holds every sample (no multiprocess files needed).
    serve("relay", settings.metrics_address, settings.relay_metrics_port)
    runner = Relay(settings)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("relay: %s received, stopping", signal.Signals(signum).name)
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.run()

"""`rivya-hooks simulate`: run the Rivya simulator in the foreground."""

from __future__ import annotations

import click

from rivyahooks_protocol import contract
from rivyahooks_simulator.config import Faults, SimConfig
from rivyahooks_simulator.server import Simulator
from rivyahooks_simulator.state import new_signing_secret

RATIO = click.FloatRange(0, 1)


def _parse_key(value: str) -> tuple[str, list[str] | None]:
    key, sep, scopes = value.partition(":")
    if not sep:
        return key, None
    chosen = [s for s in scopes.split("+") if s]
    unknown = set(chosen) - set(contract.SCOPES)
    if unknown:
        raise click.BadParameter(f"unknown scopes {sorted(unknown)}; known: {contract.SCOPES}")
    return key, chosen


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8900, show_default=True, help="Port to listen on (0 = any).")
@click.option(
    "--public-url", help="Base URL put in result URLs (default: http://HOST:PORT as bound)."
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="Accept this API key (repeatable). KEY has every scope; KEY:scope1+scope2 only those. "
    "One is generated and printed when none is given.",
)
@click.option("--deliver-to", help="Register a webhook endpoint with this URL at start.")
@click.option(
    "--signing-secret", help="The endpoint's whsec_ secret (generated and printed if omitted)."
)
@click.option(
    "--scheme",
    type=click.Choice(contract.SCHEMES),
    default=contract.SCHEME_STANDARD,
    show_default=True,
    help="Webhook signature scheme of deliveries.",
)
@click.option("--queued-seconds", default=0.5, show_default=True, help="Time a job stays queued.")
@click.option(
    "--processing-seconds", default=2.0, show_default=True, help="Time a job stays processing."
)
@click.option(
    "--failure-ratio", type=RATIO, default=0.1, show_default=True, help="Share of jobs that fail."
)
@click.option("--outputs", default=1, show_default=True, help="Result files per generation.")
@click.option(
    "--output-bytes", default=262144, show_default=True, help="Size of each result file in bytes."
)
@click.option(
    "--url-ttl", default=3600.0, show_default=True, help="Seconds a result URL stays valid."
)
@click.option("--credits", default=1_000_000, show_default=True, help="Starting credit balance.")
@click.option(
    "--delivery-attempts",
    default=6,
    show_default=True,
    help="Delivery attempts per event and endpoint (retries at 0.5 s, 1 s, 2 s, ...).",
)
@click.option(
    "--delivery-backoff-max",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Longest wait in seconds between two delivery attempts (the doubling stops there).",
)
@click.option(
    "--drop-ratio", type=RATIO, default=0.0, help="Share of deliveries never sent (still logged)."
)
@click.option("--duplicate-ratio", type=RATIO, default=0.0, help="Share of deliveries sent twice.")
@click.option("--delay-max", default=0.0, help="Hold each delivery back up to this many seconds.")
@click.option(
    "--reorder-ratio", type=RATIO, default=0.0, help="Share of deliveries held back further."
)
@click.option("--api-error-ratio", type=RATIO, default=0.0, help="Share of API calls given a 5xx.")
@click.option(
    "--rate-limit-ratio",
    type=RATIO,
    default=0.0,
    help="Share of API calls given 429 with Retry-After.",
)
@click.option("--retry-after", default=1, show_default=True, help="Retry-After of injected 429s.")
@click.option(
    "--slow-ratio", type=RATIO, default=0.0, help="Share of API calls and downloads made slow."
)
@click.option("--slow-seconds", default=2.0, show_default=True, help="Delay of a slow response.")
@click.option(
    "--cut-download-ratio",
    type=RATIO,
    default=0.0,
    help="Share of result downloads cut off halfway (Content-Length still announces all).",
)
@click.option(
    "--expire-early-ratio",
    type=RATIO,
    default=0.0,
    help="Share of result URLs handed out already expired.",
)
@click.option(
    "--late-write-ratio",
    type=RATIO,
    default=0.0,
    help="Share of events written to the event log late, behind events already listed.",
)
@click.option(
    "--late-write-seconds",
    default=60.0,
    show_default=True,
    help="How far in the past a late event's created_at lies.",
)
@click.option("--seed", type=int, help="Seed of the fault and outcome RNG (repeatable runs).")
@click.option("--quiet", is_flag=True, help="Do not log each request.")
def simulate(
    host: str,
    port: int,
    public_url: str | None,
    api_keys: tuple[str, ...],
    deliver_to: str | None,
    signing_secret: str | None,
    scheme: str,
    queued_seconds: float,
    processing_seconds: float,
    failure_ratio: float,
    outputs: int,
    output_bytes: int,
    url_ttl: float,
    credits: int,
    delivery_attempts: int,
    delivery_backoff_max: float,
    drop_ratio: float,
    duplicate_ratio: float,
    delay_max: float,
    reorder_ratio: float,
    api_error_ratio: float,
    rate_limit_ratio: float,
    retry_after: int,
    slow_ratio: float,
    slow_seconds: float,
    cut_download_ratio: float,
    expire_early_ratio: float,
    late_write_ratio: float,
    late_write_seconds: float,
    seed: int | None,
    quiet: bool,
) -> None:
    """Run a Rivya API v1 simulator (API, result files, webhook deliveries, faults).

    Admin routes: GET/POST /_sim/faults, GET/POST /_sim/config, GET/DELETE /_sim/requests,
    POST /_sim/scenario, POST /_sim/seed-events, POST /_sim/api-keys, POST /_sim/endpoints,
    GET /_sim/state.
    """
    config = SimConfig(
        queued_seconds=queued_seconds,
        processing_seconds=processing_seconds,
        failure_ratio=failure_ratio,
        outputs=outputs,
        output_bytes=output_bytes,
        url_ttl_seconds=url_ttl,
        initial_credits=credits,
        scheme=scheme,
        delivery_max_attempts=delivery_attempts,
        delivery_backoff_max_seconds=delivery_backoff_max,
    )
    faults = Faults(
        drop_ratio=drop_ratio,
        duplicate_ratio=duplicate_ratio,
        delay_max=delay_max,
        reorder_ratio=reorder_ratio,
        api_error_ratio=api_error_ratio,
        rate_limit_ratio=rate_limit_ratio,
        retry_after_seconds=retry_after,
        slow_ratio=slow_ratio,
        slow_seconds=slow_seconds,
        cut_download_ratio=cut_download_ratio,
        expire_early_ratio=expire_early_ratio,
        late_write_ratio=late_write_ratio,
        late_write_seconds=late_write_seconds,
    )
    keys = dict(_parse_key(k) for k in api_keys) or None
    sim = Simulator(
        host=host,
        port=port,
        api_keys=keys,
        config=config,
        faults=faults,
        seed=seed,
        public_url=public_url,
        quiet=quiet,
    )
    sim.start()
    click.echo(f"Rivya simulator listening on {sim.url}", err=False)
    click.echo(f"  RIVYA_API_BASE={sim.url}")
    if not api_keys:
        click.echo(f"  RIVYA_API_KEY={sim.api_key}")
    if deliver_to:
        secret = signing_secret or new_signing_secret()
        endpoint = sim.register_endpoint(deliver_to, secret=secret, scheme=scheme)
        click.echo(f"  delivering to {deliver_to} (endpoint {endpoint['id']}, scheme {scheme})")
        click.echo(f"  RIVYA_WEBHOOK_SECRETS={secret}")
    click.echo("Press Ctrl-C to stop.", err=False)
    sim.serve_forever()

"""One run's layout: its hosts, directories, secrets, ports and the URLs between them."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tests.soak.hosts import Network
from tests.soak.supervision import Processes

POSTGRES_PORT = 5432
PGBOUNCER_PORT = 6432
REDIS_PORT = 6379
S3_PORT = 9000  # the gate that can refuse writes
MOTO_PORT = 9001  # moto itself, on the data host's loopback only
WEB_PORT = 8000
PUBLIC_PORT = 8080
INTERNAL_PORT = 8081
SIMULATOR_PORT = 8900
DATABASE = "rivyahooks"
BUCKET = "rivya-results"


@dataclass
class Run:
    """What every part of the soak needs to know about this run."""

    network: Network
    rundir: Path  # scratch (database cluster, sockets, temp files); removed at the end
    logdir: Path  # kept for a look after the run
    processes: Processes
    pool_mode: str = "transaction"  # PgBouncer's
    api_key: str = field(default_factory=lambda: "rvya_sk_soak_" + secrets.token_hex(12))
    webhook_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )
    results_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def data(self) -> str:
        return self.network["data"].address

    def direct_database_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.data}:{POSTGRES_PORT}/{DATABASE}"

    def pooled_database_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.data}:{PGBOUNCER_PORT}/{DATABASE}"

    def broker_url(self) -> str:
        return f"redis://{self.data}:{REDIS_PORT}/0"

    def s3_endpoint(self) -> str:
        return f"http://{self.data}:{S3_PORT}"

    @property
    def s3_full_flag(self) -> Path:
        return self.rundir / "s3-full"

    def simulator_url(self) -> str:
        return f"http://{self.network['rivya'].address}:{SIMULATOR_PORT}"

    def public_url(self) -> str:
        return f"http://{self.network['edge'].address}:{PUBLIC_PORT}"

    def internal_url(self) -> str:
        return f"http://{self.network['edge'].address}:{INTERNAL_PORT}"

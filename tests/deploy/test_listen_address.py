"""gunicorn listens on loopback unless HOST says otherwise; the image says 0.0.0.0 for itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT_BIND = "import rivyahooks.gunicorn_conf as c; print(c.bind)"


def _bind(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    done = subprocess.run(
        [sys.executable, "-c", PRINT_BIND],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_gunicorn_listens_on_loopback_by_default() -> None:
    assert _bind() == "127.0.0.1:8000"


def test_host_and_port_say_where_else() -> None:
    assert _bind(HOST="0.0.0.0", PORT="9000") == "0.0.0.0:9000"  # noqa: S104


def test_the_image_listens_on_every_address_of_its_container() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    env_block = dockerfile[dockerfile.index("ENV PATH=") :].split("\nUSER", 1)[0]
    assert "HOST=0.0.0.0" in env_block

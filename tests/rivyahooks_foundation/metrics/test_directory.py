"""Each start of a forking role gets an empty metrics directory of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ENTRY = """
import os, sys
from rivyahooks_foundation.metrics.directory import use_own_metrics_directory
path = use_own_metrics_directory("web", sys.argv[1])
assert use_own_metrics_directory("web", sys.argv[1]) == path  # a config reload keeps it
assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(path)
from rivyahooks_foundation.metrics.web import DELIVERED
DELIVERED["accepted"].inc()
print(path)
print(sorted(p.name for p in path.iterdir()))
"""


def start(base: Path, code: str = ENTRY) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code, str(base)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


def test_a_start_writes_to_its_own_directory_and_removes_it_at_exit(tmp_path: Path) -> None:
    path, files = start(tmp_path)
    assert Path(path).parent == tmp_path / "rivya-hooks-metrics"
    assert "counter_" in files  # the counter went to this start's own file
    assert not Path(path).exists()


def test_directories_of_dead_processes_are_removed_at_start(tmp_path: Path) -> None:
    root = tmp_path / "rivya-hooks-metrics"
    dead = root / "web-999999999"  # no such pid
    (dead / "stale").mkdir(parents=True)
    (dead / "counter_999999999.db").write_bytes(b"old counts")
    start(tmp_path)
    assert not dead.exists()


def test_choosing_after_prometheus_client_was_imported_is_refused(tmp_path: Path) -> None:
    code = (
        "import prometheus_client, sys\n"
        "from rivyahooks_foundation.metrics.directory import use_own_metrics_directory\n"
        "try:\n"
        "    use_own_metrics_directory('web', sys.argv[1])\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n"
    )
    (said,) = start(tmp_path, code)
    assert said.startswith("refused: prometheus_client was imported before")

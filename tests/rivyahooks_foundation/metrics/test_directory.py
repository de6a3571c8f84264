"""Each start of a forking role gets an empty metrics directory of its own."""

from __future__ import annotations

import os
import stat
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
    assert Path(path).parent == tmp_path / f"rivya-hooks-metrics-{os.getuid()}"
    assert "counter_" in files  # the counter went to this start's own file
    assert not Path(path).exists()


def test_directories_of_dead_processes_are_removed_at_start(tmp_path: Path) -> None:
    root = tmp_path / f"rivya-hooks-metrics-{os.getuid()}"
    root.mkdir(mode=0o700)
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


def test_the_service_s_directory_is_private(tmp_path: Path) -> None:
    path, _ = start(tmp_path)
    root = Path(path).parent
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert root.stat().st_uid == os.getuid()


REFUSAL = (
    "import sys\n"
    "from rivyahooks_foundation.metrics.directory import use_own_metrics_directory\n"
    "try:\n"
    "    use_own_metrics_directory('web', sys.argv[1])\n"
    "except RuntimeError as exc:\n"
    "    print('refused:', exc)\n"
)


def test_a_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    # Made first by someone else on a shared /tmp, or loosened by hand: not used as it is.
    root = tmp_path / f"rivya-hooks-metrics-{os.getuid()}"
    root.mkdir()
    root.chmod(0o777)
    (said,) = start(tmp_path, REFUSAL)
    assert said.startswith(f"refused: {root} is open to other users (mode 777)")


def test_a_symlink_in_its_place_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / f"rivya-hooks-metrics-{os.getuid()}").symlink_to(elsewhere)
    (said,) = start(tmp_path, REFUSAL)
    assert said.startswith("refused:")
    assert "is not a directory of this user" in said

"""File storage: a final name only ever holds a complete file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.storage import FileStorage, output_key


def test_commit_moves_a_complete_file_to_its_key(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    key = output_key("task_1", 0, "ab" * 32)
    with storage.staging("task_1.0") as staged:
        staged.path.write_bytes(b"hello")
        storage.commit(staged, key)
    assert storage.path(key).read_bytes() == b"hello"
    assert list(storage.partials.iterdir()) == []


def test_uncommitted_staging_leaves_nothing(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)

    def cut_download() -> None:
        with storage.staging("task_1.0") as staged:
            staged.path.write_bytes(b"half")
            raise RuntimeError("download cut")

    with pytest.raises(RuntimeError):
        cut_download()
    assert list(tmp_path.rglob("*")) == [storage.partials]


def test_partials_of_a_dead_writer_are_removed(tmp_path: Path) -> None:
    # A child process stages a file and dies without cleaning up (as under SIGKILL).
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tasks.storage import FileStorage\n"
        "s = FileStorage(Path(sys.argv[1]))\n"
        "cm = s.staging('task_2.0')\n"
        "staged = cm.__enter__()\n"
        "staged.path.write_bytes(b'partial')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    storage = FileStorage(tmp_path)
    assert len(list(storage.partials.glob("*.part"))) == 1
    assert storage.remove_stale_partials(max_age_seconds=3600) == 1
    assert list(storage.partials.glob("*.part")) == []


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    with pytest.raises(ValueError, match="escapes"):
        storage.path("../outside")
    assert output_key("../../etc", 1, "00").startswith("id-")

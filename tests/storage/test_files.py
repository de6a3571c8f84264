"""File storage: a final name only ever holds a complete file; keys are stable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from storage import download_name, extension_for, output_key
from storage.files import FileStorage


def test_commit_moves_a_complete_file_to_its_key(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    key = output_key("task_1", 0, "ab" * 32, "image/png")
    with storage.staging("task_1.0") as staged:
        staged.write(b"hello")
        storage.commit(staged, key, "image/png")
    assert key == "task_1/0000-" + "ab" * 32 + ".png"
    with storage.open(key) as handle:
        assert handle.read() == b"hello"
    assert storage.size(key) == 5
    assert list(storage.partials.iterdir()) == []


def test_uncommitted_staging_leaves_nothing(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)

    def cut_download() -> None:
        with storage.staging("task_1.0") as staged:
            staged.write(b"half")
            raise RuntimeError("download cut")

    with pytest.raises(RuntimeError):
        cut_download()
    assert list(tmp_path.rglob("*")) == [storage.partials]


def test_a_write_failing_with_bytes_still_buffered_leaves_no_partial(tmp_path: Path) -> None:
    # The disk fills during a download: the failing write leaves bytes in Python's write
    # buffer, so closing the file fails again. The partial must go all the same, or the disk
    # stays full for every retry. A file size limit makes the kernel refuse the write (EFBIG)
    # exactly as a full disk does (ENOSPC); the child ignores SIGXFSZ to get the error.
    code = (
        "import errno, resource, signal, sys\n"
        "from pathlib import Path\n"
        "from storage.files import FileStorage\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "s = FileStorage(Path(sys.argv[1]))\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
        "try:\n"
        "    with s.staging('task_3.0') as staged:\n"
        "        for _ in range(100):\n"
        "            staged.write(b'x' * 1024)\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "EFBIG", result.stderr
    assert list(FileStorage(tmp_path).partials.iterdir()) == []


def test_partials_of_a_dead_writer_are_removed(tmp_path: Path) -> None:
    # A child process stages a file and dies without cleaning up (as under SIGKILL).
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from storage.files import FileStorage\n"
        "s = FileStorage(Path(sys.argv[1]))\n"
        "cm = s.staging('task_2.0')\n"
        "staged = cm.__enter__()\n"
        "staged.write(b'partial')\n"
        "staged.handle.flush()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    storage = FileStorage(tmp_path)
    assert len(list(storage.partials.glob("*.part"))) == 1
    assert storage.remove_abandoned(max_age_seconds=3600) == 1
    assert list(storage.partials.glob("*.part")) == []


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    with pytest.raises(ValueError, match="escapes"):
        storage.open("../outside")
    assert output_key("../../etc", 1, "00").startswith("id-")


@pytest.mark.parametrize(
    ("content_type", "extension"),
    [
        ("image/png", ".png"),
        ("IMAGE/JPEG; charset=binary", ".jpg"),
        ("video/mp4", ".mp4"),
        ("audio/mpeg", ".mp3"),
        ("application/x-unknown", ".bin"),
        (None, ".bin"),
    ],
)
def test_names_carry_an_extension_from_the_content_type(
    content_type: str | None, extension: str
) -> None:
    assert extension_for(content_type) == extension
    assert output_key("task_1", 2, "cd" * 32, content_type).endswith(extension)
    assert download_name("task_1", 2, content_type) == f"task_1-2{extension}"

"""File storage: a final name only ever holds a complete file; keys are stable."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage import StorageFull, download_name, extension_for, output_key
from storage.files import FileStorage
from tests.support.fulldisk import run_on_full_disk


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


def test_a_commit_that_fails_leaves_no_partial(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    (tmp_path / "task_9").write_bytes(b"a file where the task's folder should be")
    with storage.staging("task_9.0") as staged:
        staged.write(b"complete")
        with pytest.raises(FileExistsError):
            storage.commit(staged, "task_9/0000-x.bin", None)
    assert list(storage.partials.iterdir()) == []


def test_room_is_refused_below_the_free_space_margin(tmp_path: Path) -> None:
    total = shutil.disk_usage(tmp_path).total  # more than is free, whatever else is written
    FileStorage(tmp_path).ensure_room(0)
    with pytest.raises(StorageFull, match="bytes free"):
        FileStorage(tmp_path).ensure_room(total + 1)
    with pytest.raises(StorageFull, match="STORAGE_MIN_FREE_BYTES"):
        FileStorage(tmp_path, min_free_bytes=total + 1).ensure_room(0)


FILL_THE_DISK = """
import sys
from pathlib import Path
from storage.files import FileStorage
from storage.space import StorageFull
s = FileStorage(Path(sys.argv[1]))
try:
    with s.staging("task_10.0") as staged:
        for _ in range(64):
            staged.write(b"x" * 64 * 1024)  # 4 MiB on a 1 MiB disk
except StorageFull as exc:
    print("StorageFull", exc.__cause__.errno, sorted(p.name for p in s.partials.iterdir()))
"""


def test_a_full_disk_raises_storage_full_and_leaves_no_partial(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    done = run_on_full_disk(disk, "1m", FILL_THE_DISK, str(disk), env={})
    assert done.stdout.split() == ["StorageFull", str(errno.ENOSPC), "[]"], done.stderr


def test_a_task_id_with_a_trailing_newline_is_not_a_folder_name() -> None:
    # `$` matches before a final newline: the key pattern must match the whole id.
    assert output_key("task_1\n", 0, "00").startswith("id-")
    assert download_name("task_1\n", 0, None) == "result-0.bin"
    assert output_key("task_1", 0, "00") == "task_1/0000-00.bin"

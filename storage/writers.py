"""Who wrote a staged file: staged names carry their writer, so a dead one's leftovers are found."""

from __future__ import annotations

import os
import re
import socket


def writer_id() -> str:
    """Return `<host>.<pid>`: staged names carry it so a dead local writer is recognisable."""
    # Dots would make staged names ambiguous to parse.
    return f"{socket.gethostname().replace('.', '-')}.{os.getpid()}"


def safe_label(label: str) -> str:
    """Return `label` reduced to characters every backend accepts in a name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:100]


def dead_local_writer(name: str) -> bool:
    """Return True if a staged name `<label>.<host>.<pid>.<uuid>[.part]` is of a dead process here.

    The label may itself contain dots, hence parsing from the right.
    """
    parts = name.removesuffix(".part").split(".")
    host = socket.gethostname().replace(".", "-")
    if len(parts) < 4 or parts[-3] != host or not parts[-2].isdigit():
        return False
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

"""ed25519 keys and signatures made by the openssl command: an implementation not ours."""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from rivyahooks_protocol import contract


@dataclass(frozen=True)
class OpensslKey:
    private: Path
    public: str  # whpk_...

    def sign(self, content: bytes, tmp: Path) -> str:
        message = tmp / "message.bin"
        message.write_bytes(content)
        # ed25519 signs in one shot, so openssl needs a file (it asks for its size).
        signed = subprocess.run(
            [
                "openssl",
                "pkeyutl",
                "-sign",
                "-inkey",
                str(self.private),
                "-rawin",
                "-in",
                str(message),
            ],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        assert len(signed) == 64
        return base64.b64encode(signed).decode()


def openssl_key(tmp: Path, name: str) -> OpensslKey:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    private = tmp / f"{name}.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)],
        check=True,
        timeout=30,
    )
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    # SubjectPublicKeyInfo for ed25519: a fixed 12-byte prefix, then the raw 32-byte key.
    return OpensslKey(private, contract.PUBLIC_KEY_PREFIX + base64.b64encode(der[-32:]).decode())

"""Signed, expiring result URLs, like a storage service's pre-signed links."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class ResultURLSigner:
    """Mint and check `/results/{task}/{index}?exp=...&sig=...` URLs."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def signature(self, task_id: str, index: int, expires: int) -> str:
        """Return the signature of one result URL."""
        message = f"{task_id}:{index}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def url(self, base_url: str, task_id: str, index: int, expires: int) -> str:
        """Return a result URL valid until `expires` (unix seconds)."""
        sig = self.signature(task_id, index, expires)
        return f"{base_url}/results/{task_id}/{index}?exp={expires}&sig={sig}"

    def valid(self, task_id: str, index: int, expires: int, sig: str) -> bool:
        """Tell whether `sig` was minted here for these values."""
        return hmac.compare_digest(self.signature(task_id, index, expires), sig)

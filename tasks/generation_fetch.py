"""Fetch a generation from Rivya, its errors turned into the failures that end an attempt."""

from __future__ import annotations

from rivyahooks_foundation.tracing import traced
from rivyahooks_protocol import contract
from rivyahooks_protocol.errors import RivyaError
from rivyahooks_protocol.generation import GenerationDocument, parse_generation
from tasks.outcomes import PermanentFailure, TransientFailure
from tasks.runtime import Runtime


@traced("rivya.get_generation")
def fetch_generation(runtime: Runtime, task_id: str) -> GenerationDocument | None:
    """Return the generation from Rivya, or None when Rivya says it does not exist."""
    try:
        document = runtime.rivya.get_generation(task_id)
    except RivyaError as exc:
        if exc.code == contract.ERROR_NOT_FOUND:
            return None
        if exc.status == 404:
            # Rivya's own 404 always carries not_found; a bare one comes from something else
            # answering at that address (a proxy, a wrong base URL). Not proof of absence.
            raise TransientFailure(
                f"Rivya: HTTP 404 without Rivya's not_found error code ({exc.message}); "
                f"check that RIVYA_API_BASE ({runtime.settings.rivya_api_base}) is Rivya's API"
            ) from exc
        if exc.retryable:
            raise TransientFailure(f"Rivya: {exc}", exc.retry_after) from exc
        raise PermanentFailure(f"Rivya: {exc}") from exc
    return parse_generation(document)

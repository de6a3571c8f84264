"""Optional OpenTelemetry traces: a delivery, its publish, the task run and each download.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set, and then only with the `otel` extra
installed (`pip install 'rivya-hooks[otel]'`). Off, nothing of OpenTelemetry is imported and
every helper here is one check of a module global. On, each process exports its spans over
OTLP/HTTP; the exporter reads the other standard OTEL_* variables itself.

The trace crosses processes in W3C `traceparent` form: the receiver puts its context in the
Celery message's headers, the worker continues it for the task and its downloads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

_tracer: Any = None  # an opentelemetry Tracer once configured; None: tracing is off
_provider: Any = None
_OFF: AbstractContextManager[None] = nullcontext()


def configure_tracing(role: str, endpoint: str, *, exporter: Any = None) -> bool:
    """Start exporting this process's spans; return False (doing nothing) when not configured.

    `exporter` replaces the OTLP exporter (tests use the SDK's in-memory one). Call it in the
    process that makes the spans: after a fork, not before (the exporter runs a thread).
    """
    global _tracer, _provider
    if not endpoint and exporter is None:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.error(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "install the extra (pip install 'rivya-hooks[otel]') or unset the variable"
        )
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if _provider is not None:
        _provider.shutdown()
    _provider = TracerProvider(
        resource=Resource.create({"service.name": "rivya-hooks", "rivyahooks.role": role})
    )
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = _provider.get_tracer("rivyahooks")
    log.info("traces exported", extra={"tracing_role": role})
    return True


def shutdown_tracing() -> None:
    """Export what is left and stop (tests; processes do it at exit)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """Return a context manager timing `name` as a child of the current span."""
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(name, attributes=_named(attributes))  # type: ignore[no-any-return]


def traced(name: str) -> Callable[[F], F]:
    """Decorate a function so each call is a span (free when tracing is off)."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _tracer is None:
                return function(*args, **kwargs)
            with _tracer.start_as_current_span(name):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def annotate(**attributes: Any) -> None:
    """Add attributes (event id, task id, index) to the current span."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(_named(attributes))


def context_headers() -> dict[str, str]:
    """Return the current trace context as message headers ({} when tracing is off)."""
    if _tracer is None:
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


@contextmanager
def continued(name: str, carrier: Mapping[str, Any], **attributes: Any) -> Iterator[None]:
    """Run a span that continues the trace whose context `carrier` holds (a task's headers)."""
    if _tracer is None:
        yield
        return
    from opentelemetry.propagate import extract

    parent = extract({k: v for k, v in carrier.items() if isinstance(v, str)})
    with _tracer.start_as_current_span(name, context=parent, attributes=_named(attributes)):
        yield


def _named(attributes: dict[str, Any]) -> dict[str, Any]:
    return {f"rivyahooks.{key}": value for key, value in attributes.items() if value is not None}

"""Traces are free when off, and link across a message's headers when on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rivyahooks_foundation import tracing


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_no_tracing_code_is_loaded_when_tracing_is_off() -> None:
    # redis-py imports opentelemetry's API and metrics SDK itself when they are installed;
    # what tracing would cost is the trace SDK, the exporter and the propagators.
    loaded = run_python(
        "import sys\n"
        "import receiver.app, tasks.processing, tasks.instrumentation\n"
        "from rivyahooks_foundation import tracing\n"
        "assert tracing.configure_tracing('web', '') is False\n"
        "with tracing.span('x'): pass\n"
        "assert tracing.context_headers() == {}\n"
        "ours = ('opentelemetry.sdk.trace', 'opentelemetry.exporter', 'opentelemetry.propagate')\n"
        "print(sorted(m for m in sys.modules if m.startswith(ours)))"
    )
    assert loaded == "[]"


def test_without_the_extra_a_configured_endpoint_is_an_error_not_a_crash() -> None:
    said = run_python(
        "import sys, logging\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "from rivyahooks_foundation import tracing\n"
        "print(tracing.configure_tracing('web', 'http://collector:4318'))"
    )
    assert said.splitlines()[-1] == "False"
    assert said.startswith("ERROR OTEL_EXPORTER_OTLP_ENDPOINT is set but")


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing("test", "", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def test_a_published_context_is_continued_by_the_consumer(
    exported: InMemorySpanExporter,
) -> None:
    @tracing.traced("receive")
    def receive() -> dict[str, str]:
        tracing.annotate(event_id="evt_1", missing=None)
        return tracing.context_headers()

    headers = receive()
    assert set(headers) == {"traceparent"}
    with tracing.continued("task", headers, event_id="evt_1"), tracing.span("download", index=0):
        pass

    tracing.shutdown_tracing()  # flushes the batch
    spans = {s.name: s for s in exported.get_finished_spans()}
    assert set(spans) == {"receive", "task", "download"}
    assert spans["receive"].attributes == {"rivyahooks.event_id": "evt_1"}
    assert spans["task"].context.trace_id == spans["receive"].context.trace_id
    assert spans["task"].parent.span_id == spans["receive"].context.span_id
    assert spans["download"].parent.span_id == spans["task"].context.span_id
    assert spans["download"].attributes == {"rivyahooks.index": 0}

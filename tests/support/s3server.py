"""A real S3-compatible server for the tests: moto's standalone server, as its own process.

Tests reach it over HTTP with the production client code: `open_storage` builds the boto3
client from the usual AWS variables, which `S3Server.environ()` provides (the tests set them
in their own process with monkeypatch, and pass them to the gunicorn and Celery children).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support import services
from tests.support.processes import free_port, stop, wait_for_http


@dataclass
class S3Server:
    url: str
    bucket: str

    def environ(self) -> dict[str, str]:
        """Return the AWS variables that point boto3 at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def storage_url(self, prefix: str = "results") -> str:
        return f"s3://{self.bucket}/{prefix}"

    def client(self) -> Any:
        import boto3

        env = self.environ()
        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Return every object key under `prefix`."""
        keys: list[str] = []
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def incomplete_uploads(self) -> list[str]:
        """Return the keys of every multipart upload not completed nor aborted."""
        answer = self.client().list_multipart_uploads(Bucket=self.bucket)
        return [upload["Key"] for upload in answer.get("Uploads", [])]

    def read(self, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())


@contextmanager
def s3_server(log: Path | None = None) -> Iterator[S3Server]:
    """Start moto's server on a free loopback port with one empty bucket."""
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.exists() and shutil.which("moto_server") is None:
        services.absent(
            "moto_server is not installed; install the test extras",
            "moto_server is not installed (pip install 'moto[server]')",
        )
    port = free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=out,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/moto-api/", process)
        server = S3Server(url, "rivya-results")
        server.client().create_bucket(Bucket=server.bucket)
        yield server
    finally:
        stop(process)
        if log:
            out.close()  # type: ignore[union-attr]


def moto_reset(server: S3Server) -> None:
    """Empty the server between tests (moto's own reset endpoint)."""
    httpx.post(server.url + "/moto-api/reset", timeout=10)
    server.client().create_bucket(Bucket=server.bucket)

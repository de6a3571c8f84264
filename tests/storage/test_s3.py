"""Object storage against a real S3-compatible server (moto's, over HTTP), production client.

A final key only ever holds a complete object, whatever happens to the writer, and nothing
is left in staging: no staging object, no incomplete multipart upload.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from rivyahooks_foundation.settings import Settings
from storage import StorageFull, open_storage, output_key
from storage.s3 import STAGING_DIR, S3Storage, store_full
from tests.support.s3server import S3Server
from tests.support.tcpproxy import tcp_proxy

PART = 5 * 1024 * 1024  # the smallest part S3 accepts


def blob(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def write_in_chunks(staged: object, data: bytes, chunk: int = 256 * 1024) -> None:
    for start in range(0, len(data), chunk):
        staged.write(data[start : start + chunk])  # type: ignore[attr-defined]


def small_parts(s3: S3Server) -> S3Storage:
    """The production storage with the smallest parts, so a few MiB take the multipart path."""
    storage = open_storage(Settings(storage_url=s3.storage_url(), storage_part_bytes=PART))
    assert isinstance(storage, S3Storage)
    return storage


def test_a_small_file_is_put_straight_to_its_key(s3: S3Server) -> None:
    storage = open_storage(Settings(storage_url=s3.storage_url()))
    data = blob(300_000)
    key = output_key("task_1", 0, hashlib.sha256(data).hexdigest(), "image/png")
    with storage.staging("task_1.0") as staged:
        write_in_chunks(staged, data)
        storage.commit(staged, key, "image/png")
    assert s3.keys() == [f"results/{key}"]
    assert s3.read(f"results/{key}") == data
    assert storage.exists(key)
    assert storage.size(key) == len(data)
    assert s3.incomplete_uploads() == []


def test_a_large_file_goes_through_staging_and_lands_whole(s3: S3Server) -> None:
    storage = small_parts(s3)
    data = blob(2 * PART + 12345, seed=1)
    key = output_key("task_2", 1, hashlib.sha256(data).hexdigest(), "video/mp4")
    with storage.staging("task_2.1") as staged:
        write_in_chunks(staged, data)
        # Parts are on the server, but nothing is visible under a key yet.
        assert s3.keys() == []
        assert len(s3.incomplete_uploads()) == 1
        storage.commit(staged, key, "video/mp4")
    assert s3.keys() == [f"results/{key}"]
    assert s3.read(f"results/{key}") == data
    head = s3.client().head_object(Bucket=s3.bucket, Key=f"results/{key}")
    assert head["ContentType"] == "video/mp4"
    assert s3.incomplete_uploads() == []


def test_a_failed_upload_leaves_nothing(s3: S3Server) -> None:
    storage = small_parts(s3)
    data = blob(2 * PART, seed=2)

    def cut_download() -> None:
        with storage.staging("task_3.0") as staged:
            write_in_chunks(staged, data)
            raise RuntimeError("download cut")

    with pytest.raises(RuntimeError):
        cut_download()
    assert s3.keys() == []
    assert s3.incomplete_uploads() == []


def test_a_part_the_store_refuses_ends_the_upload_with_nothing_left(s3: S3Server) -> None:
    storage = small_parts(s3)

    def write_after_the_upload_vanished() -> None:
        with storage.staging("task_3.1") as staged:
            write_in_chunks(staged, blob(PART, seed=3))  # the first part is sent
            # The upload is gone from the store (another host's sweeper, a lifecycle rule):
            # the next part is refused, and so is the abort that cleans up after it.
            (upload,) = storage.incomplete_uploads()
            s3.client().abort_multipart_upload(
                Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            write_in_chunks(staged, blob(PART, seed=4))

    with pytest.raises(ClientError) as refused:
        write_after_the_upload_vanished()
    assert refused.value.operation_name == "UploadPart"
    assert s3.keys() == []
    assert s3.incomplete_uploads() == []


def test_a_completion_the_store_refuses_leaves_nothing(s3: S3Server) -> None:
    # Parts below S3's 5 MiB minimum are accepted one by one and refused at completion.
    storage = S3Storage(s3.bucket, "results/", client=s3.client(), part_bytes=64 * 1024)
    data = blob(3 * 64 * 1024 + 10, seed=5)
    with storage.staging("task_3.2") as staged:
        write_in_chunks(staged, data, chunk=64 * 1024)
        with pytest.raises(ClientError) as refused:
            storage.commit(staged, "task_3/0002-x.bin", None)
    assert refused.value.operation_name == "CompleteMultipartUpload"
    assert s3.keys() == []
    assert s3.incomplete_uploads() == []


def proxied_client(s3: S3Server, port: int) -> Any:
    """Return an S3 client that reaches the server through a proxy, trying each call once."""
    env = s3.environ()
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def test_an_abort_that_fails_does_not_hide_the_error_that_caused_it(s3: S3Server) -> None:
    server = urlsplit(s3.url)
    with tcp_proxy(server.hostname or "127.0.0.1", server.port or 0) as proxy:
        client = proxied_client(s3, proxy.port)
        storage = S3Storage(s3.bucket, "results/", client=client, part_bytes=PART)

        def cut_with_the_store_unreachable() -> None:
            with storage.staging("task_3.3") as staged:
                write_in_chunks(staged, blob(PART, seed=6))  # one part sent
                proxy.cut()  # the store becomes unreachable: the abort fails too
                raise RuntimeError("download cut")

        # The abort's own failure (a connection error) does not replace the download's.
        with pytest.raises(RuntimeError, match="download cut"):
            cut_with_the_store_unreachable()
    # The upload stays for the sweeper, which removes it once the store answers again.
    assert len(s3.incomplete_uploads()) == 1
    assert small_parts(s3).remove_abandoned(max_age_seconds=0) == 1
    assert s3.incomplete_uploads() == []


@pytest.mark.parametrize(
    ("code", "status", "full"),
    [
        ("XMinioStorageFull", 507, True),  # MinIO: its drives are below their free threshold
        ("XMinioAdminBucketQuotaExceeded", 400, True),  # MinIO: a bucket quota
        ("QuotaExceeded", 403, True),  # Ceph RGW: a user or bucket quota
        ("InternalError", 507, True),  # HTTP's own Insufficient Storage
        ("EntityTooLarge", 400, False),  # AWS's object size limit: waiting changes nothing
        ("SlowDown", 503, False),
    ],
)
def test_a_store_with_no_room_is_recognised_by_its_answer(
    code: str, status: int, full: bool
) -> None:
    answer: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    assert store_full(ClientError(answer, "UploadPart")) is full


def test_a_full_store_ends_the_staging_with_storage_full(s3: S3Server) -> None:
    # A write refused for lack of room becomes StorageFull; anything else passes unchanged.
    storage = open_storage(Settings(storage_url=s3.storage_url()))
    answer: Any = {"Error": {"Code": "XMinioStorageFull"}, "ResponseMetadata": {}}
    with pytest.raises(StorageFull), storage.staging("task_3.4"):
        raise ClientError(answer, "PutObject")
    assert s3.keys() == []


KILLED_WRITER = """
import os, sys
from rivyahooks_foundation.settings import Settings
from storage import open_storage
storage = open_storage(Settings(storage_url=sys.argv[1], storage_part_bytes=5 * 1024 * 1024))
staging = storage.staging("task_4.0")  # kept: a collected one would clean up
staged = staging.__enter__()
staged.write(b"x" * (6 * 1024 * 1024))
os._exit(0)  # killed mid-upload: no cleanup runs
"""


def test_a_killed_writers_upload_is_aborted_by_the_next_staging(s3: S3Server) -> None:
    subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, s3.storage_url()],
        check=True,
        env={**os.environ, **s3.environ()},
    )
    (orphan,) = s3.incomplete_uploads()
    assert orphan.startswith(f"results/{STAGING_DIR}task_4.0.")
    storage = small_parts(s3)
    with storage.staging("task_4.0") as staged:
        assert s3.incomplete_uploads() == []
        staged.write(b"complete")
        storage.commit(staged, "task_4/0000-x.bin", None)
    assert s3.keys() == ["results/task_4/0000-x.bin"]


def test_the_sweep_removes_abandoned_uploads_and_staging_objects(s3: S3Server) -> None:
    storage = small_parts(s3)
    client = s3.client()
    # Another host's writer (not recognisable as a dead local process) left both kinds.
    staging = f"results/{STAGING_DIR}task_5.0.otherhost.1.{int(time.time())}-abc"
    client.create_multipart_upload(Bucket=s3.bucket, Key=staging)
    client.put_object(Bucket=s3.bucket, Key=staging + "-done", Body=b"complete staging")
    client.put_object(Bucket=s3.bucket, Key="results/task_5/0000-y.bin", Body=b"final")
    # Younger than the age: kept, a live writer may still be at work.
    assert storage.remove_abandoned(max_age_seconds=3600) == 0
    assert storage.remove_abandoned(max_age_seconds=0) == 2
    assert s3.incomplete_uploads() == []
    assert s3.keys() == ["results/task_5/0000-y.bin"]


def test_stored_objects_read_by_range_and_by_signed_url(s3: S3Server) -> None:
    storage = open_storage(Settings(storage_url=s3.storage_url()))
    data = blob(200_000, seed=6)
    with storage.staging("task_6.0") as staged:
        staged.write(data)
        storage.commit(staged, "task_6/0000-z.png", "image/png")
    with storage.open("task_6/0000-z.png") as handle:
        handle.seek(1000)
        assert handle.read(10) == data[1000:1010]
        handle.seek(199_990)
        assert handle.read() == data[199_990:]
    url = storage.signed_url(
        "task_6/0000-z.png", filename="task_6-0.png", content_type="image/png", seconds=60
    )
    assert url is not None
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["Content-Type"] == "image/png"
    assert "task_6-0.png" in answer.headers["Content-Disposition"]

"""Object storage: S3 and S3-compatible stores (STORAGE_URL=s3://BUCKET/PREFIX).

The download is streamed into the store while it is hashed, with memory bounded by one part:

- a file that fits in one part is held in memory and PUT straight to its final key once its
  sha256 is known (a PUT is atomic: the key holds the whole object or nothing);
- a larger one goes through a multipart upload to a staging key under `PREFIX.staging/`,
  which is invisible until completed; once complete it is copied to its final key on the
  server (a copy is atomic too) and the staging object is deleted.

A killed worker leaves an incomplete multipart upload or a staging object behind. Their
names carry the writer's host and pid: the next staging of the same output aborts those of
dead local processes at once, and `remove_abandoned` (run by the sweeper) aborts or deletes
anything in staging older than the age given, whichever host wrote it.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from storage.backend import Staged
from storage.space import StorageFull
from storage.writers import dead_local_writer, safe_label, writer_id

log = logging.getLogger(__name__)

STAGING_DIR = ".staging/"
# S3 parts are 5 MiB to 5 GiB, at most 10,000 of them: 16 MiB parts (STORAGE_PART_BYTES)
# allow 156 GiB per file and keep the memory of one upload near two parts.
PART_BYTES = 16 * 1024 * 1024
MAX_PARTS = 10_000


def s3_client() -> Any:
    """Return a boto3 S3 client configured from the usual AWS variables and files."""
    # boto3 resolves AWS_ENDPOINT_URL(_S3), the keys, the region, profiles and instance roles
    # itself; retries in "standard" mode cover throttling and 5xx answers with backoff.
    # SigV4 always: boto3 would otherwise presign in us-east-1 with the old SigV2, which
    # S3 has been retiring and some compatible stores refuse.
    return boto3.session.Session().client(
        "s3",
        config=Config(retries={"mode": "standard", "max_attempts": 5}, signature_version="s3v4"),
    )


# What S3-compatible stores answer when they have no room: MinIO's drives below their free
# threshold (507 XMinioStorageFull), a Ceph RGW or MinIO quota (QuotaExceeded,
# XMinioAdminBucketQuotaExceeded), and HTTP's own 507. AWS's EntityTooLarge is not one: it
# is its object size limit, which no waiting changes.
FULL_CODES = frozenset(
    {"XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded", "InsufficientStorage"}
)


def store_full(exc: ClientError) -> bool:
    """Return True if the store refused a request for lack of room."""
    code = exc.response.get("Error", {}).get("Code")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in FULL_CODES or status == 507


class StagedUpload:
    """One file on its way to the store: gathered into one part's buffer, sent part by part.

    The buffer is allocated once and handed to boto3 as it is, so the memory of an upload
    stays near one part whatever the file's size.
    """

    def __init__(self, storage: S3Storage, staging_key: str) -> None:
        self.storage = storage
        self.staging_key = staging_key
        self.buffer = bytearray(storage.part_bytes)
        self.filled = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.completed = False
        self.committed = False

    def write(self, data: bytes, /) -> int:
        if self.committed or not self.buffer:
            raise RuntimeError("this upload is already committed or discarded")
        view = memoryview(data)
        while view:
            taken = min(len(view), len(self.buffer) - self.filled)
            self.buffer[self.filled : self.filled + taken] = view[:taken]
            self.filled += taken
            view = view[taken:]
            if self.filled == len(self.buffer):
                self._send_part(self.buffer)
                self.filled = 0
        return len(data)

    def contents(self) -> bytes:
        """Return what the buffer holds now (the last part, or the whole of a small file)."""
        return bytes(memoryview(self.buffer)[: self.filled])

    def _send_part(self, body: bytes | bytearray) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            answer = client.create_multipart_upload(Bucket=bucket, Key=self.staging_key)
            self.upload_id = answer["UploadId"]
        if len(self.parts) >= MAX_PARTS:
            raise ValueError("the file has more parts than S3 allows")
        number = len(self.parts) + 1
        answer = client.upload_part(
            Bucket=bucket,
            Key=self.staging_key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def discard(self) -> None:
        """Abort the upload and delete the staging object; never raise.

        Discarding runs while another error is on its way out (a part refused, the download
        cut, the store unreachable); an error of the cleanup itself, whatever its kind, must
        not replace it. The sweeper removes whatever this could not.
        """
        client, bucket = self.storage.client, self.storage.bucket
        self.buffer = bytearray()
        self.filled = 0
        if self.upload_id is None:
            return  # a small file: nothing was sent
        if not self.completed:
            try:
                client.abort_multipart_upload(
                    Bucket=bucket, Key=self.staging_key, UploadId=self.upload_id
                )
            except Exception as exc:
                log.warning("could not abort the upload of %s: %s", self.staging_key, exc)
        # Also when not known to be completed: a completion whose answer was lost did
        # create the staging object. Deleting a missing key succeeds.
        try:
            client.delete_object(Bucket=bucket, Key=self.staging_key)
        except Exception as exc:
            log.warning("could not delete staging %s: %s", self.staging_key, exc)


class S3Storage:
    """Objects under a prefix of one bucket."""

    def __init__(
        self, bucket: str, prefix: str, client: Any = None, part_bytes: int = PART_BYTES
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client if client is not None else s3_client()
        self.part_bytes = part_bytes
        self.staging_prefix = prefix + STAGING_DIR

    @contextmanager
    def staging(self, label: str) -> Iterator[StagedUpload]:
        """Yield an upload to write; it is aborted and removed unless committed."""
        label = safe_label(label)
        self._remove(self.staging_prefix + label + ".", only_dead_local=True)
        # The start time in the name gives the age of an upload on any S3-compatible store
        # (some report no real start time for multipart uploads).
        key = f"{self.staging_prefix}{label}.{writer_id()}.{int(time.time())}-{uuid.uuid4().hex}"
        staged = StagedUpload(self, key)
        try:
            yield staged
        except ClientError as exc:
            if not store_full(exc):
                raise
            raise StorageFull(f"the object store has no room: {exc}") from exc
        finally:
            if not staged.committed:
                staged.discard()

    def ensure_room(self, size: int) -> None:
        """Accept: S3 tells no free space; a full store refuses the write (StorageFull)."""

    def commit(self, staged: Staged, key: str, content_type: str | None) -> None:
        """Make the complete upload visible under `key` in one atomic step."""
        assert isinstance(staged, StagedUpload)
        final = self.prefix + key
        extra = {"ContentType": content_type} if content_type else {}
        if staged.upload_id is None:
            # It fits in one part: no staging object at all.
            self.client.put_object(Bucket=self.bucket, Key=final, Body=staged.contents(), **extra)
            staged.committed = True
            return
        if staged.filled:
            staged._send_part(staged.contents())
        staged.buffer = bytearray()
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=staged.staging_key,
            UploadId=staged.upload_id,
            MultipartUpload={"Parts": staged.parts},
        )
        staged.completed = True
        # Another worker may have stored the same output meanwhile: same key, same bytes.
        if not self.exists(key):
            # The managed copy switches to a multipart copy above 5 GiB, the limit of one
            # CopyObject; REPLACE sets the content type on the final object.
            self.client.copy(
                {"Bucket": self.bucket, "Key": staged.staging_key},
                self.bucket,
                final,
                ExtraArgs={"MetadataDirective": "REPLACE", **extra},
            )
        staged.committed = True
        self.client.delete_object(Bucket=self.bucket, Key=staged.staging_key)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        answer = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        return int(answer["ContentLength"])

    def delete(self, key: str) -> None:
        # Deleting a missing object succeeds: nothing to check first.
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def open(self, key: str) -> BinaryIO:
        """Return the object, readable and seekable; FileNotFoundError if it is not there.

        Asked first (HEAD): a missing object must be a 404 before any header of a 200 goes out.
        """
        if not self.exists(key):
            raise FileNotFoundError(f"no object {self.prefix + key}")
        return io.BufferedReader(ObjectReader(self.client, self.bucket, self.prefix + key))

    def signed_url(self, key: str, *, filename: str, content_type: str, seconds: int) -> str:
        """Return a pre-signed GET that serves the object with our name and type."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.prefix + key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=seconds,
        )
        return url

    def remove_abandoned(self, max_age_seconds: float) -> int:
        """Abort incomplete uploads and delete staging objects of dead or long-gone writers."""
        return self._remove(self.staging_prefix, max_age_seconds=max_age_seconds)

    def incomplete_uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        """Return the bucket's incomplete multipart uploads under our prefix (and `prefix`)."""
        uploads: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            uploads.extend(page.get("Uploads", []))
        return uploads

    def _remove(
        self, prefix: str, *, only_dead_local: bool = False, max_age_seconds: float = 0
    ) -> int:
        """Abort uploads and delete objects under `prefix` whose writer is gone."""
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=max_age_seconds)

        def gone(key: str, reported: dt.datetime) -> bool:
            name = key.rsplit("/", 1)[-1]
            started = _start_in_name(name) or reported
            return dead_local_writer(name) or (not only_dead_local and started < cutoff)

        removed = 0
        for upload in self.incomplete_uploads(prefix.removeprefix(self.prefix)):
            if gone(upload["Key"], upload["Initiated"]):
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
                except ClientError as exc:
                    log.warning("could not abort upload of %s: %s", upload["Key"], exc)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if gone(item["Key"], item["LastModified"]):
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed


def _start_in_name(name: str) -> dt.datetime | None:
    """Return the start time a staging name carries (`<...>.<unix time>-<hex>`), if any."""
    stamp = name.rsplit(".", 1)[-1].split("-", 1)[0]
    if not stamp.isdigit():
        return None
    return dt.datetime.fromtimestamp(int(stamp), dt.UTC)


class ObjectReader(io.RawIOBase):
    """A stored object as a seekable file: each read continues one ranged GET.

    Seeking (a Range request to the web process) starts a new GET from that offset, so
    proxying a range never reads the bytes before it.
    """

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self.client = client
        self.bucket = bucket
        self.key = key
        self.position = 0
        self.body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.position
        elif whence == io.SEEK_END:
            raise io.UnsupportedOperation("seeking from the end of an object")
        if offset != self.position:
            self._close_body()
            self.position = offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.body is None:
            try:
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-"
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return 0  # at or past the end
                raise
            self.body = answer["Body"]
        data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def _close_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        self._close_body()
        super().close()

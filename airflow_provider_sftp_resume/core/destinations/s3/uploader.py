"""
Parts in flight: upload at most ``max_in_flight`` parts at once, on threads (boto3 is synchronous).

Each part's ETag, sha256 and per-part checksum are recorded. A failed part that turns out to belong
to an upload S3 no longer has becomes :class:`~.errors.UploadAborted` (some stores answer a part
for an aborted upload with a 500 rather than ``NoSuchUpload``; a ListParts settles it).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import call, list_parts
from airflow_provider_sftp_resume.core.destinations.s3.manifest import PartRecord
from airflow_provider_sftp_resume.core.resume.verify import OVERLAP_LENGTH

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target


class PartUploader:
    """
    Upload parts in parallel, at most ``max_in_flight`` at once; :meth:`submit` blocks while all are busy.

    :param client: a boto3 S3 client
    :param target: the object being uploaded
    :param checksum: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    :param max_in_flight: parts uploading at once
    """

    def __init__(self, client: Any, target: S3Target, checksum: str, max_in_flight: int) -> None:
        self._client, self._target, self._checksum = client, target, checksum
        self._slots = threading.Semaphore(max(1, max_in_flight))
        self._pool = ThreadPoolExecutor(max(1, max_in_flight), thread_name_prefix="sftp-resume-s3")
        self._futures: list[Future[PartRecord]] = []

    def submit(self, upload_id: str, number: int, data: bytes) -> None:
        """Start uploading part ``number``; raise the error of a part that already failed."""
        self.raise_failed()
        self._slots.acquire()
        future = self._pool.submit(self._upload, upload_id, number, data)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def wait(self) -> list[PartRecord]:
        """Wait for every part in flight; return their records, or raise the first failure."""
        return self.wait_for(self.take())

    def take(self) -> list[Future[PartRecord]]:
        """Hand over the parts in flight (to wait for them without holding up :meth:`submit`)."""
        futures, self._futures = self._futures, []
        return futures

    @staticmethod
    def wait_for(futures: list[Future[PartRecord]]) -> list[PartRecord]:
        """Wait for ``futures``; return their records, or raise the first failure."""
        records, first = [], None
        for future in futures:
            try:
                records.append(future.result())
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first
        return records

    def raise_failed(self) -> None:
        """Raise now if a part in flight has already failed."""
        if any(f.done() and f.exception() for f in self._futures):
            self.wait()

    def close(self, *, cancel: bool = False) -> None:
        """Stop the threads (``cancel``: drop parts not yet started)."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def _upload(self, upload_id: str, number: int, data: bytes) -> PartRecord:
        digest = hashlib.sha256(data).digest()
        extra = checksum_arguments(self._checksum, digest)
        try:
            answer = call(
                self._target,
                f"upload part {number}",
                self._client.upload_part,
                Bucket=self._target.bucket,
                Key=self._target.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                **extra,
            )
        except Exception:
            list_parts(self._client, self._target, upload_id, page=1)  # raises UploadAborted if it is gone
            raise
        checksum = (
            answer.get("ChecksumSHA256") or answer.get("ChecksumCRC32") or extra.get("ChecksumSHA256", "")
        )
        tail = hashlib.sha256(data[-OVERLAP_LENGTH:]).hexdigest()
        return PartRecord(number, len(data), answer["ETag"], digest.hex(), checksum, tail)


def checksum_arguments(checksum: str, digest: bytes) -> dict[str, str]:
    """
    Return the checksum arguments of an UploadPart or PutObject.

    :param checksum: ``"SHA256"`` (sends ``digest``, already computed), ``"CRC32"`` (botocore computes
        it), or ``"off"``
    :param digest: sha256 of the body
    """
    if checksum == "SHA256":
        return {"ChecksumSHA256": base64.b64encode(digest).decode()}
    if checksum == "CRC32":
        return {"ChecksumAlgorithm": "CRC32"}
    return {}

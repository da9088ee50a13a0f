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
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import call, list_parts
from airflow_provider_sftp_resume.core.destinations.s3.manifest import PartRecord
from airflow_provider_sftp_resume.core.resume.resumable_sha256 import BLOCK
from airflow_provider_sftp_resume.core.resume.verify import OVERLAP_LENGTH

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.resume.resumable_sha256 import ResumableSha256, Sha256State


#: Cut parts that may wait for an upload thread while ``max_in_flight`` parts upload: the SFTP reader
#: goes on filling the next part instead of stopping at every cut while all threads are busy.
QUEUED_PARTS = 1


class PartUploader:
    """
    Upload parts in parallel, at most ``max_in_flight`` at once, plus :data:`QUEUED_PARTS` waiting.

    A cut part is joined and fed to the whole-file hash on one thread of its own (in file order, so
    the hash state after each part is known), then hashed for its own checksum and sent on one of
    ``max_in_flight`` upload threads. ``hashlib`` and the ctypes SHA-256 release the GIL, so the
    hashes run beside the event loop. A part holds a slot from :meth:`submit` (or :meth:`reserve`)
    until its upload is done: memory is bounded by ``(max_in_flight + QUEUED_PARTS) * part_size``
    plus the part being filled.

    :param client: a boto3 S3 client
    :param target: the object being uploaded
    :param checksum: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    :param max_in_flight: parts uploading at once
    """

    def __init__(self, client: Any, target: S3Target, checksum: str, max_in_flight: int) -> None:
        self._client, self._target, self._checksum = client, target, checksum
        workers = max(1, max_in_flight)
        self._slots = threading.Semaphore(workers + QUEUED_PARTS)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sftp-resume-s3")
        # One thread: the whole-file hash advances part after part, in file order.
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="sftp-resume-s3-hash")
        self._futures: list[Future[PartRecord]] = []
        self._states: dict[int, Sha256State] = {}
        self._reserved = 0  # slots taken by reserve() for parts not yet submitted
        #: parts submitted by this uploader (0: the whole-file hash was never touched by it)
        self.submitted = 0

    def reserve(self, count: int) -> bool:
        """
        Take slots for the next ``count`` parts now if all are free (else take none); :meth:`submit`
        uses them before it waits for one.
        """
        taken = 0
        while taken < count and self._slots.acquire(blocking=False):
            taken += 1
        if taken < count:
            for _ in range(taken):
                self._slots.release()
            return False
        self._reserved += count
        return True

    def submit(
        self, upload_id: str, number: int, chunks: list[bytes | memoryview], whole: ResumableSha256
    ) -> None:
        """
        Start part ``number``: its bytes advance ``whole`` (after every earlier part's), then it uploads.

        This waits for a free slot unless :meth:`reserve` took one.

        :param chunks: the part's bytes, in order (joined on the hash thread)
        :param whole: the whole-file hash
        :raises: the error of a part that already failed
        """
        self.raise_failed()
        if self._reserved:
            self._reserved -= 1
        else:
            self._slots.acquire()
        hashed = self._hasher.submit(self._advance, number, chunks, whole)
        future = self._pool.submit(self._upload, upload_id, number, hashed)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)
        self.submitted += 1

    def settle_hash(self) -> None:
        """Wait until every part submitted so far has advanced the whole-file hash."""
        self._hasher.submit(lambda: None).result()

    def untouched(self, whole: ResumableSha256) -> Sha256State | None:
        """``whole``'s state if no part was submitted (nothing else can change it then), else ``None``."""
        return None if self.submitted else whole.state()

    def state_after(self, number: int) -> Sha256State:
        """The whole-file hash state right after part ``number`` (uploaded by this uploader)."""
        return self._states[number]

    def wait(self) -> list[PartRecord]:
        """Wait for every part in flight; return their records, or raise the first failure."""
        return self.wait_for(self.take())

    def take(self) -> list[Future[PartRecord]]:
        """Hand over the parts in flight (to wait for them without holding up :meth:`submit`)."""
        futures, self._futures = self._futures, []
        return futures

    @staticmethod
    def in_turns(futures: list[Future[PartRecord]]) -> Iterator[tuple[list[PartRecord], bool]]:
        """
        Wait for ``futures`` in file order, one wait at a time; yield the records done after each wait.

        Each batch comes with whether parts remain. After a failure nothing more is yielded, but
        the rest still settle before the first failure is raised.

        :param futures: parts in file order
        """
        while futures:
            wait([futures[0]])
            done = next((i for i, future in enumerate(futures) if not future.done()), len(futures))
            batch, futures = futures[:done], futures[done:]
            try:
                records = PartUploader.wait_for(batch)
            except BaseException:
                PartUploader.wait_for(futures)  # raises the first failure of the rest, if any
                raise
            yield records, bool(futures)

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
        self._hasher.shutdown(wait=True, cancel_futures=cancel)
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def _advance(self, number: int, chunks: list[bytes | memoryview], whole: ResumableSha256) -> bytes:
        data = chunks[0] if len(chunks) == 1 and isinstance(chunks[0], bytes) else b"".join(chunks)
        whole.update(data)
        if whole.length % BLOCK == 0:  # every part but a short last one
            self._states[number] = whole.state()
        return data

    def _upload(self, upload_id: str, number: int, hashed: Future[bytes]) -> PartRecord:
        data = hashed.result()
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

"""
One try of an SFTP to S3 copy in a process of its own: ``python -m tests.support.s3_try '<json>'``.

The tests run every try through this with a fresh, empty HOME, TMPDIR and working directory, so
nothing on local disk is shared between tries (as on a new Kubernetes pod). ``kill_after`` names a
boto3 operation (``UploadPart``, ``CompleteMultipartUpload``) and a count: after that many successful
calls the process sends itself SIGKILL, a real ``kill -9`` at that exact point (a third item,
``true``, first waits for a checkpoint to record a part). ``post_action``
(``"delete"``, or ``"move"`` with ``archive_dir``) runs after the copy; ``lost_reply`` (``"remove"`` or
``"rename"``) sends that SFTP request and, as soon as the server has carried it out (the source is
gone from the local disk the server serves), kills the process before the reply is read: the
server did the post-action, the try never learned it, as when the reply is lost with the link.
Prints one JSON line: the result, or ``{"error": <class name>, "message": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
from airflow_provider_sftp_resume.core.destinations.s3.settings import UploadSettings
from airflow_provider_sftp_resume.core.destinations.s3.store import ManifestStore
from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
from airflow_provider_sftp_resume.core.transfers.to_s3 import copy_to_s3

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem


def kill_after(client: Any, target: S3Target, operation: str, count: int, checkpointed: bool = False) -> None:
    """
    SIGKILL this process right after the ``count``-th successful ``operation``.

    :param checkpointed: first wait (up to 30 s) until the manifest in the bucket records a part,
        so the kill comes after a checkpoint however the threads were scheduled
    """
    seen = {"n": 0}

    def after(**kwargs: Any) -> None:
        if kwargs["http_response"].status_code < 300:
            seen["n"] += 1
            if seen["n"] >= count:
                deadline = time.monotonic() + 30
                while checkpointed and time.monotonic() < deadline:
                    manifest = ManifestStore(client, target).read()
                    if manifest is not None and manifest.parts:
                        break
                    time.sleep(0.01)
                os.kill(os.getpid(), signal.SIGKILL)

    client.meta.events.register(f"after-call.s3.{operation}", after)


class LoseReply:
    """
    A session factory whose sessions die, by SIGKILL, once the server has done ``operation``.

    :param factory: the real session factory
    :param operation: ``"remove"`` or ``"rename"``
    :param source: the source file (local to the test's sshd), which that operation makes disappear
    """

    def __init__(self, factory: SFTPSessionFactory, operation: str, source: str) -> None:
        self._factory, self._operation, self._source = factory, operation, source

    @property
    def identity(self) -> str:
        return self._factory.identity

    def __getattr__(self, name: str) -> Any:  # the rest of the factory (process_spec, ...) as it is
        return getattr(self._factory, name)

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[RemoteFileSystem]:
        async with self._factory() as fs:
            real = getattr(fs, self._operation)

            async def send_then_die(*args: str) -> None:
                request = asyncio.ensure_future(real(*args))  # on its way to the server
                while os.path.lexists(self._source) and not request.done():
                    await asyncio.sleep(0.001)
                os.kill(os.getpid(), signal.SIGKILL)  # the server did it; its reply is never read

            setattr(fs, self._operation, send_then_die)
            yield fs


def main(spec: dict[str, Any]) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=spec["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    target = S3Target(spec["bucket"], spec["key"])
    if spec.get("kill_after"):
        kill_after(client, target, *spec["kill_after"])
    endpoint = SSHEndpoint(**spec["endpoint"])
    opener = SFTPSessionFactory(endpoint, attempts=1, max_wait=0.2)
    options = DownloadOptions(checkpoint_interval=0.05, stall_timeout=10.0)
    settings = UploadSettings(part_size=spec.get("part_size"), max_in_flight=spec.get("in_flight", 4))
    post_action = RemotePostAction.parse(spec.get("post_action"), spec.get("archive_dir"))
    session: Any = opener
    if spec.get("lost_reply"):
        session = LoseReply(opener, spec["lost_reply"], spec["remote_path"])
    try:
        result = asyncio.run(
            copy_to_s3(
                session,
                spec["remote_path"],
                client,
                target,
                options,
                settings=settings,
                post_action=post_action,
            )
        )
    except TransferError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc), "retriable": exc.retriable}))
        return
    print(json.dumps(result.to_dict()))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    main(json.loads(sys.argv[1]))

"""Fixtures of the integration tests that need more than an SFTP server."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.s3 import MotoServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real S3 endpoint (moto in server mode) on 127.0.0.1, for the whole session."""
    pytest.importorskip("moto.server", reason="moto[server] is a test dependency")
    server = MotoServer.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> tuple[Any, str]:
    """A boto3 client and a new, empty bucket of its own."""
    client = moto_server.client()
    bucket = f"bucket-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=bucket)
    return client, bucket

"""
A real S3 endpoint on 127.0.0.1: moto in server mode, as its own process, stopped by PID.

Clients reach it as users reach MinIO or another S3-compatible store: a boto3 client with
``endpoint_url``. Any access key works; the ones here are throwaway test values.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tests.support.ports import free_port, wait_for_port
from tests.support.servers import stop_process

TEST_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


@dataclass
class MotoServer:
    """A ``moto.server`` process on a free 127.0.0.1 port; :meth:`stop` ends it by PID."""

    process: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls) -> MotoServer:
        """Start the server and wait until it accepts connections."""
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, timeout=60)
        except TimeoutError:
            stop_process(process)
            raise
        return cls(process=process, port=port)

    @property
    def endpoint_url(self) -> str:
        """The URL to give boto3 (and an Airflow AWS connection's ``endpoint_url`` extra)."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, **config: Any) -> Any:
        """
        Return a boto3 S3 client for this server.

        :param config: botocore ``Config`` arguments (e.g. ``request_checksum_calculation``)
        """
        import boto3
        from botocore.config import Config

        retries = config.pop("retries", {"max_attempts": 1, "mode": "standard"})
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            config=Config(retries=retries, **config),
            **TEST_CREDENTIALS,
        )

    def stop(self) -> None:
        """Stop the server process by its PID."""
        stop_process(self.process)

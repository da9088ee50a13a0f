"""Opening an SSH connection: one attempt (host keys checked, errors translated), retried by tenacity."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

import asyncssh
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyRejected,
    TransferInterrupted,
)
from airflow_provider_sftp_resume.core.remote.failures import translate_error
from airflow_provider_sftp_resume.core.remote.hostkeys import HostKeyCheckingClient
from airflow_provider_sftp_resume.core.remote.inbound import feed_in_pieces
from airflow_provider_sftp_resume.core.remote.outbound import send_in_batches

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_sftp_resume.core.remote.ssh import ConnectPlan, SSHEndpoint

#: Errors worth a quick reconnect inside the same try: the server may be restarting or throttling
#: (OpenSSH ``MaxStartups``). Authentication and host key errors are never retried.
TRANSIENT_CONNECT_ERRORS: Sequence[type[BaseException]] = (ConnectionFailed, TransferInterrupted)


def quiet_library_logs() -> None:
    """
    Keep asyncssh's per-connection INFO lines out of task logs, unless someone chose a level.

    The engine logs one line per phase itself; asyncssh would add five more for every connection.
    """
    library_logger = logging.getLogger("asyncssh")
    if library_logger.level == logging.NOTSET:
        library_logger.setLevel(logging.WARNING)


async def _connect(endpoint: SSHEndpoint, plan: ConnectPlan, where: str) -> asyncssh.SSHClientConnection:
    """One connection attempt: host key checked by :class:`.HostKeyCheckingClient`, errors translated."""
    client = HostKeyCheckingClient(endpoint.host_key_policy)
    options = dict(plan.options)
    agent: asyncssh.SSHAgentClient | None = None
    try:
        if plan.agent_only and os.environ.get("SSH_AUTH_SOCK"):
            # No key of the connection's own (look_for_keys false): paramiko still asks the agent.
            with contextlib.suppress(OSError, asyncssh.Error, ValueError):
                agent = await asyncssh.connect_agent()
                options["client_keys"] = list(await agent.get_keys()) or None
        conn = await asyncssh.connect(client_factory=lambda: client, **options)
        feed_in_pieces(conn)
        send_in_batches(conn)
        return conn
    except asyncssh.HostKeyNotVerifiable as exc:
        if client.refusal is None:
            raise translate_error(exc, where) from None
        raise HostKeyRejected(f"{client.refusal} (while {where})") from None
    except asyncssh.PermissionDenied as exc:
        if plan.key_problems:
            raise AuthenticationFailed(
                f"Authentication failed while {where}: {exc.reason}. " + " ".join(plan.key_problems)
            ) from None
        raise translate_error(exc, where) from None
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        raise translate_error(exc, where) from None
    finally:
        if agent is not None:
            agent.close()
            with contextlib.suppress(Exception):
                await agent.wait_closed()


async def connect_with_retries(
    endpoint: SSHEndpoint, *, attempts: int = 3, max_wait: float = 10.0
) -> asyncssh.SSHClientConnection:
    """
    Open an SSH connection, retried with jittered exponential back-off (tenacity) on transient errors.

    :param endpoint: where and how to connect
    :param attempts: connection attempts before giving up (at least 1)
    :param max_wait: longest pause between attempts, seconds
    """
    quiet_library_logs()
    where = f"connecting to {endpoint.describe()}"
    plan = endpoint.connect_plan()  # a key that cannot be used fails here, before any retry
    conn: asyncssh.SSHClientConnection | None = None
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        retry=retry_if_exception_type(tuple(TRANSIENT_CONNECT_ERRORS)),
        reraise=True,
    ):
        with attempt:
            conn = await _connect(endpoint, plan, where)
    assert conn is not None
    return conn

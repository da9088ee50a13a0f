"""
OpenLineage datasets for SFTP transfers, named exactly as the stock ``SFTPOperator`` names them.

The stock operator (``airflow.providers.sftp.operators.sftp.SFTPOperator``) reports every path as
a ``file`` dataset whose name is the path and whose namespace is ``file://<address>:<port>``:

- a remote path: the connection's host, resolved to an address when it resolves, and the
  connection's port (22 when it has none);
- a local path: this worker's host name resolved to an address, and port 22 (the stock operator
  falls back to the SSH port for the local side as well; kept so both operators name the same
  file the same way and lineage graphs join up).

A download reads the remote paths and writes the local ones; an upload the other way round. The
datasets are plain values (:class:`FileDataset`) until :func:`operator_lineage` turns them into the
OpenLineage provider's ``OperatorLineage``; that is the only place needing
``apache-airflow-providers-openlineage`` (the ``openlineage`` extra), and without it the result is
``None``, which OpenLineage (absent anyway) would read as "no lineage".
"""

from __future__ import annotations

import enum
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.providers.sftp.hooks.sftp import SFTPHook

SSH_PORT = 22  # paramiko.config.SSH_PORT, the stock operator's default for both sides
SCHEME = "file"

log = logging.getLogger(__name__)


class Direction(enum.Enum):
    """Which way the bytes go."""

    DOWNLOAD = "download"  # remote -> local
    UPLOAD = "upload"  # local -> remote


@dataclass(frozen=True)
class Written:
    """
    What a completed transfer wrote to one output path.

    :param size: bytes
    :param files: files (1 for a file; the file count for a directory)
    """

    size: int
    files: int = 1


@dataclass(frozen=True)
class FileDataset:
    """
    One file or directory as OpenLineage names it.

    :param namespace: ``file://<address>:<port>``
    :param name: the path
    :param written: what was written, for an output reported on completion (``None``: not known)
    """

    namespace: str
    name: str
    written: Written | None = None


@dataclass(frozen=True)
class TransferLineage:
    """
    The inputs and outputs of one transfer.

    :param inputs: datasets read
    :param outputs: datasets written
    """

    inputs: tuple[FileDataset, ...]
    outputs: tuple[FileDataset, ...]


def resolve_host(host: str) -> str:
    """
    Return the IPv4 address of ``host``, or ``host`` itself when it does not resolve.

    :param host: a host name or address
    """
    try:
        return socket.gethostbyname(host)
    except OSError as exc:
        log.warning("Could not resolve %r for lineage; using the name as given (%s)", host, exc)
        return host


def namespace(host: str, port: int | None) -> str:
    """
    Return the dataset namespace of a path on ``host``.

    :param host: the address (see :func:`resolve_host`)
    :param port: the SSH port; ``None`` or 0 means 22
    """
    return f"{SCHEME}://{host}:{port or SSH_PORT}"


def local_namespace() -> str:
    """Return the namespace of paths on this worker."""
    return namespace(resolve_host(socket.gethostname()), None)


def remote_namespace(host: str, port: int | None) -> str:
    """
    Return the namespace of paths on the SFTP server.

    :param host: the connection's host
    :param port: the connection's port (``None``: 22)
    """
    return namespace(resolve_host(host), port)


def _as_list(paths: str | Sequence[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def transfer_lineage(
    *,
    remote_host: str,
    remote_port: int | None,
    remote_paths: str | Sequence[str],
    local_paths: str | Sequence[str],
    direction: Direction,
    written: Mapping[str, Written] | None = None,
) -> TransferLineage:
    """
    Name the datasets of one transfer between ``remote_host`` and this worker.

    :param remote_host: the SFTP server, as in the connection
    :param remote_port: its port (``None``: 22)
    :param remote_paths: path(s) on the server (files, or directories for a directory transfer)
    :param local_paths: path(s) on this worker
    :param direction: :attr:`Direction.DOWNLOAD` (remote -> local) or :attr:`Direction.UPLOAD`
    :param written: what was written per output path, known once the transfer completed
    """
    done = written or {}
    remote_ns = remote_namespace(remote_host, remote_port)
    local_ns = local_namespace()
    remote = [(remote_ns, path) for path in _as_list(remote_paths)]
    local = [(local_ns, path) for path in _as_list(local_paths)]
    reads, writes = (remote, local) if direction is Direction.DOWNLOAD else (local, remote)
    return TransferLineage(
        inputs=tuple(FileDataset(ns, path) for ns, path in reads),
        outputs=tuple(FileDataset(ns, path, done.get(path)) for ns, path in writes),
    )


def hook_transfer_lineage(
    hook: SFTPHook,
    *,
    remote_paths: str | Sequence[str],
    local_paths: str | Sequence[str],
    direction: Direction,
    written: Mapping[str, Written] | None = None,
) -> TransferLineage:
    """
    :func:`transfer_lineage` for the server of an SFTP hook (its connection's host and port).

    :param hook: a stock ``SFTPHook`` or a subclass; its connection has been read on construction
    :param remote_paths: path(s) on the server
    :param local_paths: path(s) on this worker
    :param direction: which way the bytes go
    :param written: what was written per output path
    """
    return transfer_lineage(
        remote_host=str(hook.remote_host),
        remote_port=hook.port,
        remote_paths=remote_paths,
        local_paths=local_paths,
        direction=direction,
        written=written,
    )


def operator_lineage(lineage: TransferLineage) -> Any:
    """
    Return ``lineage`` as the OpenLineage provider's ``OperatorLineage``, or ``None`` without it.

    Outputs whose :class:`Written` is known carry the standard ``outputStatistics`` facet (``size``,
    ``fileCount``). Typed ``Any``: the provider is an optional extra.

    :param lineage: the datasets of one transfer
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        log.debug("apache-airflow-providers-openlineage is not installed; no lineage reported")
        return None

    def output(dataset: FileDataset) -> Any:
        if dataset.written is None:
            return Dataset(namespace=dataset.namespace, name=dataset.name)
        statistics = OutputStatisticsOutputDatasetFacet(
            size=dataset.written.size, fileCount=dataset.written.files
        )
        return OutputDataset(
            namespace=dataset.namespace, name=dataset.name, outputFacets={"outputStatistics": statistics}
        )

    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in lineage.inputs],
        outputs=[output(d) for d in lineage.outputs],
    )

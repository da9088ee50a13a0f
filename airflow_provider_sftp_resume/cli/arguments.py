"""The command line's grammar: ``sftp-resume get|put|mirror`` and their flags (argparse)."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_sftp_resume import __version__
from airflow_provider_sftp_resume.core.resume.verify import DEFAULT_VERIFY, TAIL_LENGTH
from airflow_provider_sftp_resume.core.transfers.batch import MAX_CONCURRENCY
from airflow_provider_sftp_resume.core.transfers.download_types import MAX_CONNECTIONS
from airflow_provider_sftp_resume.core.transfers.upload_types import DEFAULT_TEMP_SUFFIX

if TYPE_CHECKING:
    from collections.abc import Sequence

PASSWORD_ENV = "SFTP_PASSWORD"
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

EPILOG = f"""\
connection: either --conn-id (an Airflow connection, read as the operators read it) or --host.
  Passwords are never taken on the command line: --password-env VAR (default: ${PASSWORD_ENV} if
  set) or --password-prompt. Host keys are checked against ~/.ssh/known_hosts (or --known-hosts,
  --host-key); --no-host-key-check accepts an unknown key (a changed key is still refused).

exit codes: 0 done; 75 a retriable failure (run again: it resumes); 65 a permanent failure (a
  person must act); 2 bad usage; 1 an unexpected error; 130/143 stopped by SIGINT/SIGTERM.
"""


def parse_size(text: str) -> int:
    """
    A positive byte count: ``65536``, ``64K``, ``64KiB``, ``4M``, ``1G`` (units of 1024, as curl's).

    :raises argparse.ArgumentTypeError: not a positive size
    """
    match = _SIZE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size; give bytes, or e.g. 64K, 4M, 1G")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def positive_seconds(text: str) -> float:
    """A positive number of seconds. :raises argparse.ArgumentTypeError: not one"""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def count(text: str) -> int:
    """A whole number >= 0. :raises argparse.ArgumentTypeError: not one"""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


class Refuse(argparse.Action):
    """A flag that is refused with a message naming the alternative (its value is never echoed)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, why: str, **kwargs: Any) -> None:
        self.why = why
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        parser.error(self.why)


def _connection_flags() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--conn-id", metavar="ID", help="an Airflow connection (sftp type); imports Airflow")
    group.add_argument("--host", help="server host name or address")
    group.add_argument("--port", type=int, default=None, help="server port (default 22)")
    group.add_argument("--user", help="login name (default: the local user)")
    group.add_argument("--key", action="append", default=[], metavar="FILE", help="private key (repeatable)")
    group.add_argument("--known-hosts", metavar="FILE", help="known_hosts file (default ~/.ssh/known_hosts)")
    group.add_argument(
        "--host-key",
        action="append",
        default=[],
        metavar="LINE",
        help="pinned host key, 'ssh-ed25519 AAAA...'",
    )
    group.add_argument(
        "--no-host-key-check", action="store_true", help="accept a host key that is neither known nor pinned"
    )
    group.add_argument(
        "--password-env", metavar="VAR", help=f"read the password from this variable (default {PASSWORD_ENV})"
    )
    group.add_argument("--password-prompt", action="store_true", help="ask for the password (getpass)")
    group.add_argument(
        "--password",
        action=Refuse,
        why="--password is refused: a password on the command line leaks into ps and shell history. "
        f"Put it in an environment variable (--password-env VAR, default {PASSWORD_ENV}) or use "
        "--password-prompt.",
    )
    group.add_argument(
        "--connect-timeout", type=positive_seconds, default=30.0, metavar="S", help="default %(default)s"
    )
    return parent


def _transfer_flags() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("transfer")
    group.add_argument("--stall-timeout", type=positive_seconds, default=60.0, metavar="S", help="default 60")
    group.add_argument(
        "--chunk-size", type=parse_size, metavar="SIZE", help="bytes per request (default: auto)"
    )
    group.add_argument(
        "--skip-unchanged",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="leave a destination alone that provably matches the source (default: on)",
    )
    group.add_argument("--create-dirs", action="store_true", help="create missing parent directories")
    # ---- issue 13 part 2 (bandwidth cap): passed through as the engine's max_bytes_per_second once
    # TransferOptions has it (knobs.py refuses it with a clear message until then) ----
    group.add_argument(
        "--limit-rate", "--bwlimit", type=parse_size, metavar="RATE", help="bytes per second, e.g. 2M"
    )
    # ---- end bandwidth cap ----
    group.add_argument(
        "--retries", type=count, default=0, metavar="N", help="retry retriable failures N times"
    )
    group.add_argument("--retry-delay", type=positive_seconds, default=10.0, metavar="S", help="default 10")
    out = parent.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="print the result as JSON on stdout (logs on stderr)"
    )
    out.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress")
    out.add_argument(
        "--progress-interval", type=positive_seconds, default=10.0, metavar="S",
        help="seconds between progress lines when stderr is not a terminal (default 10)",
    )  # fmt: skip
    return parent


def _download_flags(*, connections_help: str, connections_max: int) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("verification")
    group.add_argument(
        "--verify",
        default=DEFAULT_VERIFY,
        metavar="CHECKS",
        help="checks that prove kept bytes before resuming: size, mtime (or timestamp), tail, overlap, "
        "joined by + or , (default %(default)s)",
    )
    group.add_argument(
        "--tail-size", type=parse_size, metavar="SIZE", help=f"only {TAIL_LENGTH} (the engine's fixed tail)"
    )
    parent.add_argument(
        "--connections", type=int, default=None, metavar="N", help=f"{connections_help} (1-{connections_max})"
    )
    return parent


def _checksum_flags(*, file_help: str | None) -> argparse.ArgumentParser:
    """
    Proof against the source's own checksum (README "Checksums from the source").

    :param file_help: help of ``--checksum-file`` (one file's checksum file); ``None`` offers
        ``--checksum-suffix`` instead (a checksum file beside every file of a mirror)
    """
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("checksums from the source")
    if file_help is None:
        group.add_argument(
            "--checksum-suffix",
            metavar="SUFFIX",
            help="each file's checksum file is its path + SUFFIX (.sha256)",
        )
    else:
        group.add_argument("--checksum-file", metavar="PATH", help=file_help)
    group.add_argument(
        "--checksum-missing", choices=("fail", "skip"), default="fail",
        help="a missing checksum file fails (retriable, the default) or is skipped",
    )  # fmt: skip
    group.add_argument(
        "--source-checksum",
        choices=("auto", "check-file", "command"),
        help="the server's own digest must match too: the check-file extension, or sha256sum over SSH",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The ``sftp-resume`` parser with its three commands."""
    parser = argparse.ArgumentParser(
        prog="sftp-resume",
        description="Resumable, verified SFTP transfers: a cut link resumes where it stopped.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{get,put,mirror}")
    connection, transfer = _connection_flags(), _transfer_flags()
    common: dict[str, Any] = {"epilog": EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}
    get = commands.add_parser(
        "get",
        help="download one file",
        parents=[connection, transfer, _download_flags(
            connections_help="connections for this one file", connections_max=MAX_CONNECTIONS
        ), _checksum_flags(file_help="the source's remote checksum file (sha256sum output, a digest)")],
        allow_abbrev=False,
        **common,
    )  # fmt: skip
    get.add_argument("remote", help="remote file")
    get.add_argument("local", help="local file (written via LOCAL.part)")
    get.add_argument("--sha256", metavar="HEX", help="the digest the finished file must have")
    put = commands.add_parser(
        "put",
        help="upload one file",
        parents=[connection, transfer, _checksum_flags(file_help="a local checksum file of LOCAL")],
        allow_abbrev=False,
        **common,
    )
    put.add_argument("local", help="local file")
    put.add_argument("remote", help=f"remote file (written via REMOTE{DEFAULT_TEMP_SUFFIX}, then renamed)")
    put.add_argument("--temp-suffix", default=DEFAULT_TEMP_SUFFIX, help="default %(default)s")
    put.add_argument(
        "--state-dir", metavar="DIR", help="where the resume sidecar goes (default: beside LOCAL)"
    )
    _refuse_on_put(put)
    mirror = commands.add_parser(
        "mirror",
        help="download a remote directory or glob",
        parents=[connection, transfer, _download_flags(
            connections_help="files at once, one connection each (default 4)", connections_max=MAX_CONCURRENCY
        ), _checksum_flags(file_help=None)],
        allow_abbrev=False,
        **common,
    )  # fmt: skip
    mirror.add_argument("remote", help="remote directory, or a glob such as '/out/*.csv' (quote it)")
    mirror.add_argument("local", help="local directory (created if missing)")
    mirror.add_argument("--pattern", help="fnmatch pattern under the directory (not with a glob)")
    mirror.add_argument("-r", "--recursive", action="store_true", help="descend into subdirectories")
    return parser


def _refuse_on_put(put: argparse.ArgumentParser) -> None:
    """Download-only knobs, refused on ``put`` with what an upload does instead."""
    proof = (
        "an upload proves its kept bytes by reading sampled blocks back from the server (and fsync where "
        "the server has it); there are no verify checks to choose"
    )
    put.add_argument("--verify", action=Refuse, why=f"--verify applies to get and mirror: {proof}.")
    put.add_argument("--tail-size", action=Refuse, why=f"--tail-size applies to get and mirror: {proof}.")
    put.add_argument(
        "--connections",
        action=Refuse,
        why="--connections applies to get and mirror: an upload writes over one connection.",
    )

"""``sftp-resume``: parse, connect, transfer (with retries), report; the exit code says what happened."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_sftp_resume.cli import transfer
from airflow_provider_sftp_resume.cli.arguments import build_parser
from airflow_provider_sftp_resume.cli.display import Display
from airflow_provider_sftp_resume.cli.endpoint import ConnectionSetupError, resolve
from airflow_provider_sftp_resume.cli.exits import ExitCode, Terminated, exit_code_for
from airflow_provider_sftp_resume.cli.knobs import UsageError, download_options, upload_options
from airflow_provider_sftp_resume.core.errors import TransferError, TransferInterrupted
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Coroutine, Iterator, Sequence
    from types import FrameType

    from airflow_provider_sftp_resume.core.remote.protocol import SessionFactory

HINTS = {
    ExitCode.TEMPFAIL: "a retry can succeed: run the same command again and it resumes from the kept bytes",
    ExitCode.PERMANENT: "retrying will not help until the cause above is fixed",
    ExitCode.INTERRUPTED: "interrupted; the kept bytes are checkpointed, the same command resumes",
    ExitCode.TERMINATED: "terminated; the kept bytes are checkpointed, the same command resumes",
}


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run ``sftp-resume`` with ``argv`` (``sys.argv[1:]`` when ``None``).

    :return: the exit code (:class:`~.exits.ExitCode`)
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # stdout is the JSON's alone: whatever else writes to it (a library's print, Airflow's stdout
    # log handler) goes to stderr meanwhile.
    args.json_out = sys.stdout if args.json else None
    with contextlib.redirect_stdout(sys.stderr):
        return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    with Display(quiet=args.quiet) as display:
        try:
            one_try = _transfer_of(args, display)
            # importing Airflow (--conn-id) installs a root log handler of its own: take it back
            target = resolve(args, interactive=sys.stdin.isatty(), airflow_loaded=display.own_logging)
        except UsageError as exc:
            _usage(parser, exc)
        except ConnectionSetupError as exc:
            display.own_logging()
            display.log.error("%s", exc)
            _print_json(args, {"error": str(exc), "retriable": False, "exit_code": int(ExitCode.PERMANENT)})
            return ExitCode.PERMANENT
        if target.warning:
            display.log.warning("%s", target.warning)
        display.log.info("Connecting to %s", target.session.identity)
        tries = transfer.Tries(
            one_try, target, retries=args.retries, delay=args.retry_delay, logger=display.log
        )
        try:
            with _sigterm_raises():
                outcome = tries.run()
        except BaseException as exc:
            return _failed(args, display, exc, tries.count)
    _print_json(args, {**outcome.to_dict(), "tries": tries.count})
    return ExitCode.OK


def _transfer_of(
    args: argparse.Namespace, display: Display
) -> Callable[[SessionFactory], Coroutine[Any, Any, transfer.Outcome]]:
    """The command's one try. :raises UsageError: a flag the engine cannot honour"""
    if args.command == "put":
        return transfer.put(args, upload_options(args, display.on_progress), display.log)
    options = download_options(args, display.on_progress)
    if args.command == "get":
        return transfer.get(args, options, display.log)
    try:
        selection = RemoteSelection.parse(args.remote, args.pattern, args.recursive)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return transfer.mirror(args, options, selection, display.log)


def _usage(parser: argparse.ArgumentParser, exc: UsageError) -> NoReturn:
    parser.error(str(exc))


def _failed(args: argparse.Namespace, display: Display, exc: BaseException, tries: int) -> int:
    """Tell what ended the command; return its exit code."""
    code = exit_code_for(exc)
    if code is ExitCode.INTERNAL:
        display.log.error("Unexpected error (please report it)", exc_info=exc)
    elif isinstance(exc, TransferError):
        display.log.error("%s", exc)
    display.log.error("exit %d: %s", code, HINTS.get(code, "an unexpected error"))
    report: dict[str, Any] = {
        "error": str(exc) or type(exc).__name__,
        "error_type": type(exc).__name__,
        "retriable": code is ExitCode.TEMPFAIL,
        "exit_code": int(code),
        "tries": tries,
    }
    if isinstance(exc, TransferInterrupted):
        report["offset"] = exc.offset
    batch = getattr(exc, "result", None)  # SomeFilesFailed, BatchFailed: the per-file outcomes
    if batch is not None:
        report["result"] = batch.to_dict()
    _print_json(args, report)
    if code is ExitCode.INTERNAL and not isinstance(exc, Exception):
        raise exc  # SystemExit and the like from elsewhere keep their meaning
    return code


def _print_json(args: argparse.Namespace, document: dict[str, Any]) -> None:
    out = args.json_out
    if out is not None:
        json.dump(document, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """
    SIGTERM raises :class:`~.exits.Terminated` while the transfer runs.

    Python's default SIGTERM ends the process on the spot; a raising handler lets the engine's
    runner (:class:`~...core.runner.AbortableRun`) cancel the try, which writes a last checkpoint.
    """

    def terminated(signum: int, frame: FrameType | None) -> NoReturn:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""
Exit codes a scheduler (cron, systemd, a wrapper script) can act on.

=====  ==================  ==========================================================================
code   name                meaning
=====  ==================  ==========================================================================
0      ``OK``              done: the file (every file) is complete and verified, or already was
1      ``INTERNAL``        an unexpected error (a bug): the traceback is printed; retrying may help
2      ``USAGE``           bad command line or option value (argparse's own code); nothing was done
65     ``PERMANENT``       a permanent transfer error: retrying cannot help until a person acts
                           (credentials, host key, paths, a checksum mismatch, files refused)
75     ``TEMPFAIL``        a retriable transfer error (``EX_TEMPFAIL``): run the same command again
                           later and it resumes from the kept ``.part``
130    ``INTERRUPTED``     stopped by Ctrl-C (SIGINT); the checkpoint is kept, a new run resumes
143    ``TERMINATED``      stopped by SIGTERM; the checkpoint is kept, a new run resumes
=====  ==================  ==========================================================================

65 and 75 are ``EX_DATAERR`` and ``EX_TEMPFAIL`` of BSD's ``sysexits.h``; 130 and 143 follow the shell's
128 + signal number.
"""

from __future__ import annotations

import enum

from airflow_provider_sftp_resume.core.errors import TransferError


class ExitCode(enum.IntEnum):
    """The process exit codes of ``sftp-resume`` (see the module docstring)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    PERMANENT = 65
    TEMPFAIL = 75
    INTERRUPTED = 130
    TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived; raised by the CLI's handler so the transfer unwinds and keeps its checkpoint."""


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for what ended the command (``retriable`` decides between 75 and 65)."""
    if isinstance(exc, TransferError):
        return ExitCode.TEMPFAIL if exc.retriable else ExitCode.PERMANENT
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, Terminated):
        return ExitCode.TERMINATED
    return ExitCode.INTERNAL

"""
The ``sftp-resume`` command line: ``get``, ``put`` and ``mirror`` over the transfer engine.

Importing this package does not import Airflow; only ``--conn-id`` does (to read the connection
through :class:`~airflow_provider_sftp_resume.hooks.sftp.ResumableSFTPHook`, as the operators do).

- :mod:`.arguments`: the grammar (argparse); a password on the command line is refused
- :mod:`.knobs`: the engine's options from the flags (``--verify timestamp`` is ``mtime``)
- :mod:`.endpoint`: where to connect: ``--conn-id`` or ``--host``/``--user``/``--key``...
- :mod:`.display`: a progress bar (rich) on a terminal, plain lines otherwise
- :mod:`.transfer`: one try of each command, and ``--retries`` (tenacity) around it
- :mod:`.exits`: the exit codes (0 done, 75 retriable, 65 permanent, 2 usage, 1 unexpected)
- :mod:`.main`: the console script's entry point
"""

from __future__ import annotations

from airflow_provider_sftp_resume.cli.exits import ExitCode
from airflow_provider_sftp_resume.cli.main import main

__all__ = ["ExitCode", "main"]

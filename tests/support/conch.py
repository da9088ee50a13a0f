"""A Twisted Conch SFTP server in its own process (:mod:`.conch_sftp_server`), stopped by PID."""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path

from tests.support.keys import KeyPair, make_key
from tests.support.ports import free_port, wait_for_port
from tests.support.servers import ServerInfo, stop_process

_SCRIPT = Path(__file__).with_name("conch_sftp_server.py")


def conch_available() -> bool:
    """Whether Twisted Conch is installed (the ``test`` extra)."""
    try:
        import twisted.conch.unix  # noqa: F401
    except ImportError:
        return False
    return True


class ConchServer:
    """
    Twisted Conch's SFTP server on 127.0.0.1; started in ``__init__``, stopped by :meth:`stop` (by PID).

    :param workdir: its host key and log
    :param client_key: the only key allowed to log in
    """

    def __init__(self, workdir: Path, client_key: KeyPair) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        host_key = make_key(workdir / "conch_host_ed25519_key")
        port = free_port()
        user = getpass.getuser()
        self._log = open(workdir / "conch.log", "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [sys.executable, str(_SCRIPT), str(port), str(host_key.private), str(client_key.public), user],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"Conch did not start: {(workdir / 'conch.log').read_text()}") from None
        self.info = ServerInfo("conch", port, host_key, client_key, user)

    @property
    def pid(self) -> int:
        """The server process (for its CPU time)."""
        return self._process.pid

    def stop(self) -> None:
        stop_process(self._process)
        self._log.close()

"""
A Twisted Conch SFTP server, run as its own process by :class:`tests.support.conch.ConchServer`.

Twisted's stock pieces: :class:`~twisted.conch.unix.UnixConchUser` (the SFTP subsystem serving the
real file system as the logged-in user), a public-key checker with one authorized key, one host
key. Conch does not advertise ``limits@openssh.com`` and answers a read with as many bytes as the
file gives, whatever the size asked: the server the read-size discovery is for.

Usage: ``python conch_sftp_server.py PORT HOST_KEY AUTHORIZED_PUBLIC_KEY USERNAME``
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(port: int, host_key: Path, authorized: Path, username: str) -> None:
    """Serve SFTP on 127.0.0.1:``port`` until killed."""
    from twisted.conch.checkers import InMemorySSHKeyDB, SSHPublicKeyChecker
    from twisted.conch.ssh import factory, keys
    from twisted.conch.unix import UnixConchUser
    from twisted.cred import portal
    from twisted.internet import reactor
    from twisted.python.filepath import FilePath

    class User(UnixConchUser):  # type: ignore[misc]
        """Twisted 26's SFTP server joins paths to ``getHomeDir().path``; the stock user returns a str."""

        def getHomeDir(self) -> FilePath[str]:
            return FilePath(super().getHomeDir())

    class Realm:
        def requestAvatar(self, username: bytes, mind: object, *interfaces: object) -> tuple[object, ...]:
            user = User(username.decode())
            return interfaces[0], user, user.logout

    private = keys.Key.fromFile(str(host_key))
    client = keys.Key.fromFile(str(authorized))

    class Factory(factory.SSHFactory):
        publicKeys = {private.sshType(): private.public()}
        privateKeys = {private.sshType(): private}

    ssh = Factory()
    ssh.portal = portal.Portal(Realm())
    ssh.portal.registerChecker(SSHPublicKeyChecker(InMemorySSHKeyDB({username.encode(): [client]})))
    reactor.listenTCP(port, ssh, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])

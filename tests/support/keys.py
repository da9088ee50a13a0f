"""Throwaway SSH keys for test servers and clients."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class KeyPair:
    """An OpenSSH key pair on disk."""

    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    @property
    def public_line(self) -> str:
        """``type base64`` without the comment, as the connection's ``host_key`` extra wants it."""
        kind, data = self.public.read_text().split()[:2]
        return f"{kind} {data}"


def make_key(path: Path, kind: str = "ed25519", passphrase: str = "") -> KeyPair:
    """Generate a key pair with ssh-keygen (from openssh-client)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "sftp-resume-test", "-f", str(path)],
        check=True,
    )
    return KeyPair(path)

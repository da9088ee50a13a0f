"""Client private keys read as paramiko reads them: key text or file; the password tried as passphrase."""

from __future__ import annotations

import os

import asyncssh

from airflow_provider_sftp_resume.core.errors import AuthenticationFailed


class _KeyNotDecrypted(Exception):
    """An encrypted private key that neither the passphrase nor the password opens."""


def load_client_keys(
    keys: tuple[str, ...], passphrase: str | None, password: str | None
) -> tuple[list[asyncssh.SSHKey], list[str]]:
    """
    Load the connection's keys; a missing file is refused now, an undecryptable key noted.

    :param keys: key texts or file paths
    :param passphrase: passphrase of encrypted keys
    :param password: the connection's password, tried when there is no passphrase (paramiko)
    :return: the keys loaded, and why the others could not be decrypted
    :raises AuthenticationFailed: a ``key_file`` cannot be read or is not a private key
    """
    loaded: list[asyncssh.SSHKey] = []
    problems: list[str] = []
    for key in keys:
        try:
            loaded.append(_load_key(key, passphrase, password))
        except _KeyNotDecrypted as exc:
            problems.append(str(exc))
    return loaded, problems


def _read_key(key: str) -> tuple[str, bytes]:
    """Where the key comes from (for messages), and its bytes."""
    if "PRIVATE KEY" in key:
        return "the connection's `private_key` extra", key.encode()
    path = os.path.expanduser(key)
    try:
        with open(path, "rb") as handle:
            return f"the `key_file` extra ({path})", handle.read()
    except OSError as exc:
        raise AuthenticationFailed(
            f"Cannot read the private key file {path} named by the connection's `key_file` extra "
            f"(or ~/.ssh/config IdentityFile): {exc.strerror or exc}. Fix the path or the file's "
            "permissions on the worker."
        ) from None


def _load_key(key: str, passphrase: str | None, password: str | None = None) -> asyncssh.SSHKey:
    """
    Load a private key from its text or its file; without a passphrase, try the password (paramiko).

    :raises AuthenticationFailed: the ``key_file`` cannot be read or is not a private key
    :raises _KeyNotDecrypted: the key is encrypted and nothing given opens it
    """
    source, data = _read_key(key)
    candidates = [passphrase] if passphrase else [None, *([password] if password else [])]
    reason = ""
    for candidate in candidates:
        try:
            return asyncssh.import_private_key(data, candidate)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
            reason = str(exc)
            if not _is_passphrase_problem(reason):
                raise AuthenticationFailed(
                    f"{source[0].upper()}{source[1:]} is not a usable private key: {reason}. Put an "
                    "OpenSSH or PEM private key (RSA, ECDSA or Ed25519) there."
                ) from None
    given = "the `private_key_passphrase` extra" if passphrase else "no `private_key_passphrase` extra"
    if not passphrase and password:
        given += " (the connection's password was tried too, as paramiko does)"
    raise _KeyNotDecrypted(
        f"The private key from {source} is encrypted and cannot be decrypted with {given}: {reason}. "
        "Set the connection's `private_key_passphrase` extra to the key's passphrase."
    )


def _is_passphrase_problem(reason: str) -> bool:
    lowered = reason.lower()
    return "passphrase" in lowered or "decrypt" in lowered or "encrypt" in lowered

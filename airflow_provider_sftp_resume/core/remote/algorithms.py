"""
SSH algorithm lists as paramiko (the stock hook) would offer them, in asyncssh's names.

Ciphers, key exchange, MACs, host key and signature algorithms, compression: a preferred order
first, then asyncssh's defaults, then what paramiko offers beyond them, minus what the connection
disables. Only an order: the reorder can never make a negotiation fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

#: Cipher preference: AES-GCM first, since AES-NI/ARMv8 make it the cheapest for a Python client
#: (asyncssh's own order puts chacha20-poly1305, computed in pieces, first). Only an order: every
#: algorithm asyncssh and paramiko offer by default is still offered after these, so the reorder can
#: never make a negotiation fail.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
#: What paramiko (the stock hook) offers by default beyond asyncssh's defaults, offered last so that a
#: legacy server the stock hook reaches is reached here too (the server picks the first of our list
#: it knows, so these are used only when it knows nothing better).
PARAMIKO_ALSO_OFFERS: dict[str, tuple[str, ...]] = {
    "ciphers": ("aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"),
    "kex": (
        "diffie-hellman-group-exchange-sha1",
        "diffie-hellman-group14-sha1",
        "diffie-hellman-group1-sha1",
    ),
    "macs": ("hmac-md5", "hmac-sha1-96", "hmac-md5-96"),
    "keys": ("ssh-dss",),
}


def _algorithm_tables() -> dict[str, Callable[[], tuple[set[str], list[str]]]]:
    from asyncssh import compression, encryption, kex, mac, public_key

    def names(algs: Sequence[bytes]) -> list[str]:
        return [alg.decode("ascii") for alg in algs]

    def table(possible: Sequence[bytes], defaults: Sequence[bytes]) -> tuple[set[str], list[str]]:
        # GSS key exchange needs a Kerberos context, which the stock hook never sets up either.
        return set(names(possible)), [name for name in names(defaults) if not name.startswith("gss-")]

    return {
        "ciphers": lambda: table(encryption.get_encryption_algs(), encryption.get_default_encryption_algs()),
        "kex": lambda: table(kex.get_kex_algs(), kex.get_default_kex_algs()),
        "macs": lambda: table(mac.get_mac_algs(), mac.get_default_mac_algs()),
        "keys": lambda: table(public_key.get_public_key_algs(), public_key.get_default_public_key_algs()),
        "pubkeys": lambda: table(public_key.get_public_key_algs(), public_key.get_default_public_key_algs()),
        "compression": lambda: table(compression.get_compression_algs(), compression.get_compression_algs()),
    }


#: For each kind: what asyncssh implements, and what it offers by default (in its order).
ALGORITHMS = _algorithm_tables()


def supported_ciphers() -> set[str]:
    """The encryption algorithms asyncssh implements (what a ``ciphers`` list may name)."""
    return ALGORITHMS["ciphers"]()[0]


def algorithm_list(
    kind: str,
    preferred: Sequence[str] = (),
    *,
    disabled: Mapping[str, Sequence[str]],
    compress: bool = False,
) -> list[str]:
    """
    Preferred names first, then asyncssh's defaults, then paramiko's extras; minus disabled.

    :param kind: ``ciphers``, ``kex``, ``macs``, ``keys`` (host keys), ``pubkeys`` (signatures) or
        ``compression``
    :param preferred: names to put first (those asyncssh does not implement are dropped)
    :param disabled: paramiko's ``disabled_algorithms``: kind -> names never offered
    :param compress: also offer zlib (only for ``compression``)
    """
    possible, defaults = ALGORITHMS[kind]()
    if kind == "ciphers":
        defaults = [*PREFERRED_CIPHERS, *defaults]
    elif kind == "compression":
        defaults = ["none", "zlib@openssh.com", "zlib"] if compress else ["none"]
    refused = set(disabled.get(kind, ()))
    if kind == "pubkeys":  # paramiko applies this list only to the signature of an RSA client key
        refused = {name for name in refused if "rsa" in name}
    names: list[str] = []
    for name in [*preferred, *defaults, *PARAMIKO_ALSO_OFFERS.get(kind, ())]:
        if name in possible and name not in refused and name not in names:
            names.append(name)
    return names

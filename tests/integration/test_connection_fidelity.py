"""
One Airflow connection, two hooks: the stock ``SFTPHook`` (paramiko) and ours (asyncssh) must agree.

Each case builds ONE ``sftp`` connection (an ``AIRFLOW_CONN_...`` JSON variable) and a throwaway
``HOME`` with the ``~/.ssh`` files of the case, then runs the stock ``SFTPHook(...).get_conn()`` and
our ``download_resumable()`` of a small file against a real OpenSSH ``sshd``, each in its own copy
of that HOME, and compares the outcomes (connects, or refuses and why) and the host keys each side
accepted and remembered in ``known_hosts``.

Where ours is deliberately stricter than stock, the case says so and the test asserts exactly that
difference (README, "Connection setup", lists them). The only substitution: the stock hook's
connection retries (3 attempts, 3-5 s apart) are cut to one attempt so a refusal costs no sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
import pytest
import tenacity
from airflow.providers.sftp.hooks.sftp import SFTPHook

from airflow_provider_sftp_resume.core.errors import AuthenticationFailed, HostKeyRejected
from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
from tests.conftest import sha256_file, write_random
from tests.support.keys import KeyPair, make_key
from tests.support.servers import OpenSSHServer, ServerInfo, find_sshd

if TYPE_CHECKING:
    from collections.abc import Iterator

CONN_ID = "fidelity"
PASSPHRASE = "fid3lity-Pass"
#: Relays stdin/stdout to a TCP port: the ProxyCommand of the ~/.ssh/config case.
RELAY = """
import socket, sys, threading
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while data := sys.stdin.buffer.read1(65536):
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while data := sock.recv(65536):
    sys.stdout.buffer.write(data); sys.stdout.buffer.flush()
"""


@dataclass
class Servers:
    main: ServerInfo
    ecdsa: KeyPair  # the main server's second host key
    legacy: ServerInfo  # only aes128-cbc, as old appliances
    impostor: KeyPair  # a host key no server has
    rsa_client: KeyPair  # an RSA client key authorized on the main server
    encrypted_client: KeyPair  # the authorized client key, encrypted with PASSPHRASE
    wrong_client: KeyPair  # a client key no server authorizes


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[Servers]:
    if find_sshd() is None:
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    base = tmp_path_factory.mktemp("fidelity")
    ecdsa = make_key(base / "ssh_host_ecdsa_key", kind="ecdsa")
    main = OpenSSHServer(base / "main", client_key, extra_config=f"HostKey {ecdsa.private}\n")
    legacy = OpenSSHServer(base / "legacy", client_key, extra_config="Ciphers aes128-cbc\n")
    encrypted = base / "encrypted_client"
    shutil.copy(client_key.private, encrypted)
    shutil.copy(client_key.public, encrypted.with_name(encrypted.name + ".pub"))
    encrypted.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", PASSPHRASE, "-f", str(encrypted)], check=True)
    rsa_client = make_key(base / "rsa_client", kind="rsa")
    authorized = base / "main" / "authorized_keys"
    authorized.write_text(authorized.read_text() + rsa_client.public.read_text())
    try:
        yield Servers(
            main=main.info,
            ecdsa=ecdsa,
            legacy=legacy.info,
            impostor=make_key(base / "impostor"),
            rsa_client=rsa_client,
            encrypted_client=KeyPair(encrypted),
            wrong_client=make_key(base / "wrong_client"),
        )
    finally:
        main.stop()
        legacy.stop()


@dataclass
class Case:
    """One connection and one ~/.ssh; ``stricter`` names a deliberate difference from stock."""

    name: str
    extra: dict[str, Any] = field(default_factory=dict)
    known_hosts: str | None = None  # None: no file; "" empty file; "right", "changed", "ecdsa"
    hashed: bool = False
    key_file: str | None = "client"  # "client", "encrypted", "wrong", "rsa", None
    password: str | None = None
    server: str = "main"
    host: str = "127.0.0.1"
    ssh_config: str = ""
    default_key: str | None = None  # a key put at ~/.ssh/id_ed25519
    stricter: str = ""  # ours refuses the host key where stock connects, and why
    lenient: str = ""  # ours connects where stock fails authentication, and why


PIN = "right"
HOST_KEY_CASES = [
    Case("pin-right", {"host_key": "right"}),
    Case("pin-wrong", {"host_key": "wrong"}),
    Case("pin-ecdsa-of-a-two-key-server", {"host_key": "ecdsa"}),
    Case("pin-bare-base64-is-rsa", {"host_key": "bare"}),
    Case("nothing-trusted-no-file"),
    Case("nothing-trusted-empty-file", known_hosts=""),
    Case("known-right", known_hosts="right"),
    Case("known-right-hashed", known_hosts="right", hashed=True),
    Case("known-changed", known_hosts="changed"),
    Case("known-changed-hashed", known_hosts="changed", hashed=True),
    Case("known-ecdsa-only", known_hosts="ecdsa"),
    Case("pin-right-known-right", {"host_key": "right"}, known_hosts="right"),
    Case("pin-right-known-changed", {"host_key": "right"}, known_hosts="changed"),
    Case(
        "pin-wrong-known-right",
        {"host_key": "wrong"},
        known_hosts="right",
        stricter="a pinned host_key is always enforced (stock lets known_hosts override it)",
    ),
    Case("nhc", {"no_host_key_check": "true"}),
    Case("nhc-empty-file-learns-the-key", {"no_host_key_check": "true"}, known_hosts=""),
    Case("nhc-known-right", {"no_host_key_check": "true"}, known_hosts="right"),
    Case("nhc-known-changed", {"no_host_key_check": "true"}, known_hosts="changed"),
    Case("nhc-uppercase-True", {"no_host_key_check": "True"}, known_hosts="changed"),
    Case("nhc-false-string", {"no_host_key_check": "false"}),
    Case("nhc-with-pin-is-a-config-error", {"no_host_key_check": "true", "host_key": "right"}),
    Case("ahc", {"allow_host_key_change": "true"}),
    Case("ahc-known-changed", {"allow_host_key_change": "true"}, known_hosts="changed"),
    Case("ahc-pin-right", {"allow_host_key_change": "true", "host_key": "right"}),
    Case("ahc-pin-wrong", {"allow_host_key_change": "true", "host_key": "wrong"}),
    Case(
        "ahc-pin-right-known-changed",
        {"allow_host_key_change": "true", "host_key": "right"},
        known_hosts="changed",
    ),
    Case(
        "ahc-nhc-known-changed",
        {"allow_host_key_change": "true", "no_host_key_check": "true"},
        known_hosts="changed",
    ),
    Case("ahc-false-string-known-changed", {"allow_host_key_change": "false"}, known_hosts="changed"),
]

#: The key exchanges Debian's OpenSSH 9.x sshd may offer.
SERVER_KEX = [
    "sntrup761x25519-sha512@openssh.com",
    "sntrup761x25519-sha512",
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
]
#: Leaves ecdh-sha2-nistp256 (a finite-field DH would raise cryptography's deprecation warning).
KEX_BUT_ECDH = [name for name in SERVER_KEX if name != "ecdh-sha2-nistp256"]
EXTRA_CASES = [
    Case("legacy-server-cbc-only", {"host_key": PIN}, server="legacy"),
    Case(
        "legacy-disabled-algorithms-cbc",
        {"host_key": PIN, "disabled_algorithms": {"ciphers": ["aes128-cbc"]}},
        server="legacy",
    ),
    Case("legacy-ciphers-list-ctr", {"host_key": PIN, "ciphers": ["aes256-ctr"]}, server="legacy"),
    Case("ciphers-list", {"host_key": PIN, "ciphers": ["aes128-ctr", "aes256-ctr"]}),
    Case("ciphers-unknown-name", {"host_key": PIN, "ciphers": ["aes128-ctr", "no-such-cipher"]}),
    Case("disabled-kex-but-ecdh", {"host_key": PIN, "disabled_algorithms": {"kex": KEX_BUT_ECDH}}),
    Case("disabled-every-server-kex", {"host_key": PIN, "disabled_algorithms": {"kex": SERVER_KEX}}),
    Case(
        "disabled-host-key-type-ed25519",
        {"host_key": "ecdsa", "disabled_algorithms": {"keys": ["ssh-ed25519"]}},
    ),
    Case("disabled-pubkeys-ed25519", {"host_key": PIN, "disabled_algorithms": {"pubkeys": ["ssh-ed25519"]}}),
    Case("compress-true", {"host_key": PIN, "compress": "true"}),
    Case("compress-false", {"host_key": PIN, "compress": "false"}),
    Case(
        "encrypted-key-file-password-as-passphrase",
        {"host_key": PIN},
        key_file="encrypted",
        password=PASSPHRASE,
    ),
    Case(
        "encrypted-key-file-passphrase-extra",
        {"host_key": PIN, "private_key_passphrase": PASSPHRASE},
        key_file="encrypted",
        lenient="private_key_passphrase also decrypts key_file (stock uses it for private_key only)",
    ),
    Case("encrypted-key-file-wrong-password", {"host_key": PIN}, key_file="encrypted", password="not-it"),
    Case("encrypted-key-file-no-secret", {"host_key": PIN, "look_for_keys": "false"}, key_file="encrypted"),
    Case("rsa-client-key", {"host_key": PIN}, key_file="rsa"),
    Case("wrong-key-falls-back-to-default-keys", {"host_key": PIN}, key_file="wrong", default_key="client"),
    Case("look-for-keys-uses-default-keys", {"host_key": PIN}, key_file=None, default_key="client"),
    Case(
        "look-for-keys-false-ignores-default-keys",
        {"host_key": PIN, "look_for_keys": "false"},
        key_file=None,
        default_key="client",
    ),
    Case(
        "wrong-key-look-for-keys-false",
        {"host_key": PIN, "look_for_keys": "false"},
        key_file="wrong",
        default_key="client",
    ),
    Case("conn-timeout-absent", {"host_key": PIN}),
    Case("conn-timeout-set", {"host_key": PIN, "conn_timeout": 7}),
    Case("known-hosts-extra-is-ignored-as-by-stock", {"known_hosts": "right"}),
    Case(
        "ssh-config-hostname-alias-is-not-followed",
        {"host_key": PIN},
        host="sftp-fidelity-alias.invalid",
        ssh_config="Host sftp-fidelity-alias.invalid\n    HostName 127.0.0.1\n",
    ),
    Case(
        "ssh-config-proxycommand-is-followed",
        {"host_key": PIN},
        host="sftp-fidelity-proxy.invalid",
        ssh_config="Host sftp-fidelity-proxy.invalid\n    ProxyCommand {python} {relay} 127.0.0.1 {port}\n",
    ),
    Case(
        "ssh-config-identityfile-is-used",
        {"host_key": PIN},
        key_file=None,
        ssh_config="Host 127.0.0.1\n    IdentityFile {client_key}\n",
    ),
]


@dataclass(frozen=True)
class Outcome:
    """``connected``, or the kind of refusal; plus the host keys known_hosts holds afterwards."""

    result: str
    learned: frozenset[tuple[str, str, str]] = frozenset()


def _host_entry(info: ServerInfo, host: str) -> str:
    return host if info.port == 22 else f"[{host}]:{info.port}"


def _public_line(path: Path) -> str:
    kind, data = path.read_text().split()[:2]
    return f"{kind} {data}"


def _key_line(servers: Servers, which: str, info: ServerInfo) -> str:
    return {
        "right": info.host_key.public_line,
        "wrong": servers.impostor.public_line,
        "changed": servers.impostor.public_line,
        "ecdsa": _public_line(servers.ecdsa.public),
        # A bare base64 key means RSA to the stock hook: an RSA key this server does not have.
        "bare": _public_line(servers.rsa_client.public).split()[1],
    }[which]


def _prepare_home(home: Path, case: Case, servers: Servers, info: ServerInfo, relay: Path) -> None:
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    if case.known_hosts is not None:
        lines = ""
        if case.known_hosts:
            lines = f"{_host_entry(info, case.host)} {_key_line(servers, case.known_hosts, info)}\n"
        (ssh / "known_hosts").write_text(lines)
        if case.hashed:
            subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(ssh / "known_hosts")], check=True)
            (ssh / "known_hosts.old").unlink(missing_ok=True)
    if case.default_key:
        key = {"client": info.client_key, "wrong": servers.wrong_client}[case.default_key]
        shutil.copy(key.private, ssh / "id_ed25519")
        (ssh / "id_ed25519").chmod(0o600)
    if case.ssh_config:
        (ssh / "config").write_text(
            case.ssh_config.format(
                python=sys.executable, relay=relay, port=info.port, client_key=info.client_key.private
            )
        )


def _connection(case: Case, servers: Servers, info: ServerInfo) -> str:
    extra: dict[str, Any] = {"conn_timeout": 10}
    key_files = {
        "client": info.client_key,
        "encrypted": servers.encrypted_client,
        "wrong": servers.wrong_client,
        "rsa": servers.rsa_client,
    }
    if case.key_file:
        extra["key_file"] = str(key_files[case.key_file].private)
    extra.update(case.extra)
    if "host_key" in extra:
        extra["host_key"] = _key_line(servers, extra["host_key"], info)
    if "known_hosts" in extra:
        path = Path(os.environ["HOME"]).parent / "extra_known_hosts"
        path.write_text(f"{_host_entry(info, case.host)} {info.host_key.public_line}\n")
        extra["known_hosts"] = str(path)
    return json.dumps(
        {
            "conn_type": "sftp",
            "host": case.host,
            "port": info.port,
            "login": info.username,
            "password": case.password,
            "extra": extra,
        }
    )


def _learned(home: Path) -> frozenset[tuple[str, str, str]]:
    """The (host, key type, key) entries of known_hosts, hashed names counted as one."""
    path = home / ".ssh" / "known_hosts"
    if not path.exists():
        return frozenset()
    entries = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            entries.add(("hashed" if parts[0].startswith("|1|") else parts[0], parts[1], parts[2]))
    return frozenset(entries)


def _stock(home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HOME", str(home))
    try:
        hook = SFTPHook(ssh_conn_id=CONN_ID)
    except Exception as exc:  # the stock __init__ validates the extras (ValueError, AirflowException)
        return f"config: {type(exc).__name__}"
    try:
        sftp = hook.get_conn()
        sftp.listdir(".")
    except ValueError:  # an extra the stock hook refuses once connected (an unknown cipher)
        return "config: ValueError"
    except paramiko.BadHostKeyException:
        return "host key"
    except paramiko.AuthenticationException:
        return "auth"
    except paramiko.SSHException as exc:
        if "known_hosts" in str(exc):
            return "host key"  # RejectPolicy
        if any(word in str(exc).lower() for word in ("passphrase", "encrypted", "authentication")):
            return "auth"
        return f"other: {exc}"
    except (OSError, EOFError) as exc:
        return f"other: {type(exc).__name__}"
    finally:
        hook.close_conn()
        if hook.client is not None:
            hook.client.close()
    return "connected"


def _ours(home: Path, monkeypatch: pytest.MonkeyPatch, info: ServerInfo) -> str:
    monkeypatch.setenv("HOME", str(home))
    try:
        hook = ResumableSFTPHook(ssh_conn_id=CONN_ID, connect_attempts=1)
    except Exception as exc:  # the stock __init__ validates the extras (ValueError, AirflowException)
        return f"config: {type(exc).__name__}"
    source = home.parent / "source.bin"
    digest = write_random(source, 20_000, seed=5)
    target = home.parent / f"target-{home.name}.bin"
    try:
        hook.download_resumable(str(source), str(target))
    except HostKeyRejected:
        return "host key"
    except AuthenticationFailed:
        return "auth"
    except ValueError:
        return "config: ValueError"
    except Exception as exc:
        import traceback

        traceback.print_exc()
        return f"other: {type(exc).__name__}"
    assert sha256_file(target) == digest
    return "connected"


def _stock_outcome_is_other(result: str) -> bool:
    return result.startswith("other")


@pytest.fixture
def one_attempt_for_stock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stock retries every failure 3 times, 3-5 s apart: one attempt gives the same outcome."""
    import airflow.providers.ssh.hooks.ssh as stock_ssh

    monkeypatch.setattr(stock_ssh, "stop_after_attempt", lambda _n: tenacity.stop_after_attempt(1))


def _insecure_stock_default() -> bool:
    """apache-airflow-providers-ssh before 7.0.0: ``no_host_key_check`` defaults to ``True``."""
    from airflow.providers.ssh.hooks.ssh import SSHHook

    probe = SSHHook(remote_host="127.0.0.1")
    return bool(probe.no_host_key_check)


def _run_case(
    case: Case, servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Outcome, Outcome]:
    info = servers.legacy if case.server == "legacy" else servers.main
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    monkeypatch.setenv("HOME", str(tmp_path / "home-stock"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    connection = _connection(case, servers, info)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection)
    homes = {side: tmp_path / f"home-{side}" for side in ("stock", "ours", "reference")}
    for home in homes.values():
        _prepare_home(home, case, servers, info, relay)
    stock = Outcome(_stock(homes["stock"], monkeypatch), _learned(homes["stock"]))
    if _insecure_stock_default() and not {"no_host_key_check", "host_key"} & set(case.extra):
        # An old SSH provider accepts unknown host keys unless told otherwise; ours never does.
        # The reference is the same connection with the secure default written out.
        secure = json.loads(connection)
        secure["extra"]["no_host_key_check"] = "false"
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(secure))
        stock = Outcome(_stock(homes["reference"], monkeypatch), _learned(homes["reference"]))
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection)
    ours = Outcome(_ours(homes["ours"], monkeypatch, info), _learned(homes["ours"]))
    return stock, ours


@pytest.mark.usefixtures("one_attempt_for_stock")
@pytest.mark.parametrize("case", HOST_KEY_CASES + EXTRA_CASES, ids=lambda case: case.name)
def test_same_connection_same_outcome(
    case: Case, servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stock, ours = _run_case(case, servers, tmp_path, monkeypatch)
    if case.stricter:
        assert stock.result == "connected", stock
        assert ours.result == "host key", f"{case.stricter}: {ours}"
    elif case.lenient:
        assert stock.result == "auth", stock
        assert ours.result == "connected", f"{case.lenient}: {ours}"
    elif _stock_outcome_is_other(stock.result):
        assert _stock_outcome_is_other(ours.result), f"stock={stock} ours={ours}"
    else:
        assert ours == stock, f"stock={stock} ours={ours}"


def test_the_cases_cover_every_host_key_combination() -> None:
    """Pinned right/wrong, known right/changed/absent, each flag and their combinations."""
    names = {case.name for case in HOST_KEY_CASES}
    for needed in (
        "pin-right",
        "pin-wrong",
        "known-right",
        "known-changed",
        "nothing-trusted-no-file",
        "nhc-known-changed",
        "ahc-pin-wrong",
        "ahc-nhc-known-changed",
        "pin-right-known-changed",
    ):
        assert needed in names


@pytest.fixture
def agent(tmp_path: Path, client_key: KeyPair, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real ssh-agent holding the authorized client key."""
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent is not installed (openssh-client)")
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", "-q", str(client_key.private)], env=env, check=True, capture_output=True)
        yield str(sock)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)


@pytest.mark.usefixtures("one_attempt_for_stock")
@pytest.mark.parametrize("look_for_keys", ["true", "false"])
def test_ssh_agent_is_used_as_by_stock(
    look_for_keys: str, agent: str, servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = servers.main
    case = Case("agent", {"host_key": PIN, "look_for_keys": look_for_keys}, key_file=None)
    for side in ("stock", "ours"):
        _prepare_home(tmp_path / f"home-{side}", case, servers, info, tmp_path / "relay.py")
    monkeypatch.setenv("HOME", str(tmp_path / "home-stock"))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", _connection(case, servers, info))
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    stock = _stock(tmp_path / "home-stock", monkeypatch)
    ours = _ours(tmp_path / "home-ours", monkeypatch, info)
    assert stock == "connected"
    assert ours == stock


@pytest.mark.usefixtures("one_attempt_for_stock")
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_pkey_set_on_the_hook_in_code(
    kind: str, servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = servers.main
    case = Case("pkey", {"host_key": PIN, "look_for_keys": "false"}, key_file=None)
    home = tmp_path / "home"
    _prepare_home(home, case, servers, info, tmp_path / "relay.py")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", _connection(case, servers, info))
    if kind == "rsa":
        pkey: paramiko.PKey = paramiko.RSAKey.from_private_key_file(str(servers.rsa_client.private))
    else:
        pkey = paramiko.Ed25519Key.from_private_key_file(str(info.client_key.private))
    stock = SFTPHook(ssh_conn_id=CONN_ID)
    stock.pkey = pkey
    stock.get_conn().listdir(".")
    stock.close_conn()
    ours = ResumableSFTPHook(ssh_conn_id=CONN_ID, connect_attempts=1)
    ours.pkey = pkey
    source = tmp_path / "source.bin"
    digest = write_random(source, 10_000)
    ours.download_resumable(str(source), str(tmp_path / "target.bin"))
    assert sha256_file(tmp_path / "target.bin") == digest


@pytest.mark.parametrize(
    ("kind", "option", "paramiko_defaults"),
    [
        ("ciphers", "encryption_algs", "_preferred_ciphers"),
        ("kex", "kex_algs", "_preferred_kex"),
        ("macs", "mac_algs", "_preferred_macs"),
        ("keys", "server_host_key_algs", "_preferred_keys"),
    ],
)
def test_everything_the_installed_paramiko_offers_is_offered_too(
    kind: str, option: str, paramiko_defaults: str
) -> None:
    """So no server the stock hook reaches is out of reach here (asyncssh lacks a few names)."""
    from airflow_provider_sftp_resume.core.remote.algorithms import ALGORITHMS
    from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint

    offered = SSHEndpoint(host="127.0.0.1").asyncssh_options()[option]
    possible = ALGORITHMS[kind]()[0]
    stock = [name for name in getattr(paramiko.Transport, paramiko_defaults) if name in possible]
    assert stock, "asyncssh implements none of paramiko's defaults?"
    assert set(stock) <= set(offered)
    if kind == "ciphers":
        assert offered[:2] == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]  # only an order


def test_timeouts_and_attempts_never_cut_what_the_stock_hook_allows(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One asyncssh deadline covers the stock hook's separate TCP, banner and auth limits."""
    monkeypatch.setenv("HOME", str(tmp_path))
    case = Case("timeouts", {"host_key": PIN})
    connection = json.loads(_connection(case, servers, servers.main))
    del connection["extra"]["conn_timeout"]
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    default = ResumableSFTPHook(ssh_conn_id=CONN_ID)
    assert default.ssh_endpoint().connect_timeout == 30 + 30 + 30  # conn_timeout=None: 30 s for TCP
    assert default.connect_attempts == 3
    tuned = ResumableSFTPHook(ssh_conn_id=CONN_ID, conn_timeout=5, banner_timeout=7.0, auth_timeout=11)
    assert tuned.ssh_endpoint().connect_timeout == 5 + 7 + 11
    assert ResumableSFTPHook(ssh_conn_id=CONN_ID, connect_attempts=1).connect_attempts == 1
    import inspect

    from airflow.providers.ssh.hooks.ssh import SSHHook

    if "conn_retry_attempts" in inspect.signature(SSHHook.__init__).parameters:  # ssh provider 4.3+
        assert ResumableSFTPHook(ssh_conn_id=CONN_ID, conn_retry_attempts=5).connect_attempts == 5

"""
Where ``sftp-resume`` connects: an Airflow connection (``--conn-id``, JSON or URI in ``AIRFLOW_CONN_*``),
or explicit flags with a password from the environment; passwords on the command line and unknown or
changed host keys are refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from typing import TYPE_CHECKING

import asyncssh
import pytest

from tests.cli.conftest import PASSWORD, cli_env, run_cli, server_flags
from tests.conftest import sha256_file, write_random
from tests.support.airflow_env import connection_json
from tests.support.keys import make_key

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo


def airflow_env(home: Path, tmp_path: Path, conn_id: str, value: str) -> dict[str, str]:
    airflow_home = tmp_path / "airflow"
    airflow_home.mkdir()
    return cli_env(
        home,
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home}/airflow.db",
        **{f"AIRFLOW_CONN_{conn_id.upper()}": value},
    )


def uri_of(server: ServerInfo, port: int) -> str:
    query = urllib.parse.urlencode(
        {
            "key_file": str(server.client_key.private),
            "host_key": server.host_key.public_line,
            "look_for_keys": "false",
        }
    )
    return f"sftp://{server.username}@{server.host}:{port}/?{query}"


@pytest.mark.parametrize("form", ["json", "uri"])
def test_conn_id_reads_the_airflow_connection_and_resumes(  # noqa: PLR0917 - fixtures
    form: str,
    openssh_server: ServerInfo,
    sshd_proxy: FaultProxy,
    remote_dir: Path,
    local_dir: Path,
    home: Path,
    tmp_path: Path,
) -> None:
    source = remote_dir / "data.bin"
    # The cut comes well after the first window (4 MiB in flight at loopback), so bytes are written
    # before it whatever the scheduling.
    digest = write_random(source, 32 * 1024 * 1024, seed=4)
    target = local_dir / "data.bin"
    value = (
        connection_json(openssh_server, port=sshd_proxy.port)
        if form == "json"
        else uri_of(openssh_server, sshd_proxy.port)
    )
    env = airflow_env(home, tmp_path, "partner_sftp", value)
    sshd_proxy.cut_after(12 * 1024 * 1024)
    first = run_cli("get", str(source), str(target), "--conn-id", "partner_sftp", "--json", env=env)
    assert first.code == 75, first.stderr
    second = run_cli("get", str(source), str(target), "--conn-id", "partner_sftp", "--json", env=env)
    assert second.code == 0, second.stderr
    assert second.json["resumed_from"] > 0  # stdout is the JSON alone, though Airflow logs to stdout
    assert sha256_file(target) == digest


def test_conn_id_that_is_not_defined_is_a_permanent_error(home: Path, tmp_path: Path) -> None:
    env = airflow_env(home, tmp_path, "other", "sftp://nobody@127.0.0.1:1")
    ran = run_cli("get", "/x", str(tmp_path / "x"), "--conn-id", "missing_conn", "--json", env=env)
    assert ran.code == 65, ran.stderr
    assert "missing_conn" in ran.json["error"]
    assert "AIRFLOW_CONN_MISSING_CONN" in ran.json["error"]


@pytest.mark.parametrize("how", ["SFTP_PASSWORD", "--password-env"])
def test_password_from_the_environment(
    how: str, password_server: ServerInfo, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "small.bin"
    digest = write_random(source, 300_000, seed=5)
    base = ["--host", password_server.host, "--port", str(password_server.port), "--user", "alice"]
    pin = ["--host-key", password_server.host_key.public_line]
    if how == "SFTP_PASSWORD":
        env, extra = cli_env(home, SFTP_PASSWORD=PASSWORD), []
    else:
        env, extra = cli_env(home, PARTNER_PW=PASSWORD), ["--password-env", "PARTNER_PW"]
    ran = run_cli("get", str(source), str(local_dir), *base, *pin, *extra, "--json", env=env)
    assert ran.code == 0, ran.stderr
    assert sha256_file(local_dir / "small.bin") == digest  # LOCAL a directory: the remote name inside it
    assert PASSWORD not in ran.stdout + ran.stderr

    wrong = run_cli(
        "get", str(source), str(local_dir / "b"), *base, *pin, env=cli_env(home, SFTP_PASSWORD="no")
    )
    assert wrong.code == 65, wrong.stderr
    assert "Authentication failed" in wrong.stderr or "ermission denied" in wrong.stderr


@pytest.mark.parametrize(
    "argv", [["--password", "hunter2-secret"], ["--password=hunter2-secret"], ["--password"]]
)
def test_a_password_on_the_command_line_is_refused(argv: list[str], tmp_path: Path, home: Path) -> None:
    ran = run_cli("get", "/remote", str(tmp_path / "x"), "--host", "127.0.0.1", *argv, env=cli_env(home))
    assert ran.code == 2
    assert "--password-env" in ran.stderr
    assert "--password-prompt" in ran.stderr
    assert "hunter2-secret" not in ran.stderr + ran.stdout


def test_a_changed_host_key_is_refused_with_its_fingerprint(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path, home: Path, tmp_path: Path
) -> None:
    source = remote_dir / "f.bin"
    write_random(source, 1000)
    other = make_key(tmp_path / "other_host_key")
    flags = server_flags(openssh_server, openssh_server.port)
    flags[flags.index("--host-key") + 1] = other.public_line
    ran = run_cli(
        "get", str(source), str(local_dir / "f.bin"), *flags, "--retries", "2", "--json", env=cli_env(home)
    )
    assert ran.code == 65, ran.stderr
    assert ran.json["error_type"] == "HostKeyRejected"
    assert ran.json["tries"] == 1
    offered = asyncssh.read_public_key(str(openssh_server.host_key.public)).get_fingerprint()
    pinned = asyncssh.read_public_key(str(other.public)).get_fingerprint()
    assert offered in ran.stderr
    assert pinned in ran.stderr
    assert not (local_dir / "f.bin").exists()


def test_an_unknown_host_key_is_refused_unless_no_host_key_check(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "f.bin"
    digest = write_random(source, 1000)
    flags = server_flags(openssh_server, openssh_server.port)
    del flags[flags.index("--host-key") : flags.index("--host-key") + 2]  # nothing pinned, no known_hosts
    refused = run_cli("get", str(source), str(local_dir / "f.bin"), *flags, env=cli_env(home))
    assert refused.code == 65, refused.stderr
    assert "SHA256:" in refused.stderr

    relaxed = run_cli(
        "get", str(source), str(local_dir / "f.bin"), *flags, "--no-host-key-check", env=cli_env(home)
    )
    assert relaxed.code == 0, relaxed.stderr
    assert "RELAXED by --no-host-key-check" in relaxed.stderr
    assert sha256_file(local_dir / "f.bin") == digest


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tail-size", "1024"], "last 65536 bytes"),
        (["--verify", "size+sha1"], "Unknown verify check"),
        (["--conn-id", "x"], "leave out --host"),
        (["--chunk-size", "lots"], "not a positive size"),
        (["--connections", "99"], "max_connections must be at most"),
        (["--password-env", "NOT_SET_ANYWHERE"], "not set"),
    ],
)
def test_bad_usage_exits_2_naming_the_flag(
    extra: list[str], message: str, tmp_path: Path, home: Path
) -> None:
    ran = run_cli("get", "/r", str(tmp_path / "l"), "--host", "127.0.0.1", *extra, env=cli_env(home))
    assert ran.code == 2, ran.stderr
    assert message in ran.stderr
    assert not (tmp_path / "l").exists()


def test_verify_timestamp_is_the_engines_mtime_and_airflow_is_not_imported(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "f.bin"
    write_random(source, 200_000)
    args = [
        "get",
        str(source),
        str(local_dir / "f.bin"),
        *server_flags(openssh_server, openssh_server.port),
        "--verify",
        "timestamp,tail",
        "--json",
        "--quiet",
    ]
    # main() in a process that then says which top-level modules it imported
    code = (
        "import sys, json; from airflow_provider_sftp_resume.cli import main; rc = main(sys.argv[1:]); "
        "sys.stderr.write(json.dumps(sorted({m.split('.')[0] for m in sys.modules})) + '\\n'); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=cli_env(home), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verify"] == "size+mtime+tail"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # --quiet: no log line on success
    modules = json.loads(lines[0])
    assert "airflow" not in modules
    assert "airflow_provider_sftp_resume" in modules

"""
Use an installed wheel as a new user would: ``airflow providers list``, then real downloads.

Run by ``scripts/check_wheel.sh`` from the checkout's venv (it needs this support code)::

    python -m tests.support.wheel_smoke --venv /tmp/fresh-venv

It starts a private OpenSSH ``sshd`` on 127.0.0.1 (the test suite's helper), then runs everything
else with the fresh venv's own ``airflow`` and ``python``, from a scratch directory and with no
``PYTHONPATH``, so only the installed wheel can be imported: one download through
``ResumableSFTPHook`` and one through the example DAG's ``ResumableSFTPDownloadOperator``
(``dag.test()``), each checked by sha256. Everything is removed and the server stopped on exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.airflow_env import connection_json
from tests.support.keys import make_key
from tests.support.servers import OpenSSHServer, find_sshd

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAG = REPO_ROOT / "example_dags" / "example_sftp_resume_download.py"
PROVIDER = "airflow-provider-sftp-resume"
MiB = 1024 * 1024

# Runs in the fresh venv; argv: venv, remote path, local path for the hook, dags folder, remote
# path and local path for the DAG. Prints one JSON line.
INSTALLED_USE = r"""
import hashlib, json, sys
from pathlib import Path

import airflow_provider_sftp_resume as package

venv, hook_remote, hook_local, dags, dag_remote, dag_local = sys.argv[1:7]
location = Path(package.__file__).resolve()
if not location.is_relative_to(Path(venv).resolve()):
    sys.exit(f"airflow_provider_sftp_resume imported from {location}, not from the venv {venv}")

from airflow_provider_sftp_resume.core import DownloadOptions
from airflow_provider_sftp_resume.hooks import ResumableSFTPHook

result = ResumableSFTPHook(ssh_conn_id="sftp_resume_example").download_resumable(
    hook_remote, hook_local, DownloadOptions(create_intermediate_dirs=True)
)

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2.11
bag = DagBag(dag_folder=dags)
if bag.import_errors:
    sys.exit(f"the example DAG did not load: {bag.import_errors}")
dag_run = bag.get_dag("example_sftp_resume_download").test(
    run_conf={"remote_path": dag_remote, "local_path": dag_local}
)
with open(dag_local, "rb") as handle:
    dag_digest = hashlib.file_digest(handle, "sha256").hexdigest()
print(json.dumps({
    "package": str(location),
    "hook_sha256": result.sha256,
    "hook_size": result.size,
    "dag_state": str(dag_run.state),
    "dag_sha256": dag_digest,
}))
"""


def _write_random(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _run(command: list[str], *, env: dict[str, str], cwd: Path, what: str) -> str:
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    print(f"wheel smoke: {what}: exit {done.returncode} in {time.monotonic() - started:.1f} s", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def smoke(venv: Path, size: int) -> None:
    """Run the checks against the wheel installed in ``venv``; raise ``SystemExit`` on a failure."""
    if find_sshd() is None:
        raise SystemExit("sshd is missing: install Debian's openssh-server (.ci/run does)")
    with tempfile.TemporaryDirectory(prefix="sftp-resume-wheel-") as scratch:
        work = Path(scratch)
        server = OpenSSHServer(work / "sshd", make_key(work / "keys" / "id_ed25519"))
        try:
            remote = work / "remote"
            hook_digest = _write_random(remote / "hook.bin", size)
            dag_digest = _write_random(remote / "dag.bin", size)
            dags = work / "dags"
            dags.mkdir()
            shutil.copy2(EXAMPLE_DAG, dags / EXAMPLE_DAG.name)
            run_dir = work / "run"
            run_dir.mkdir()
            script = run_dir / "use_installed_wheel.py"
            script.write_text(INSTALLED_USE)
            home = work / "airflow"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
            env.update(
                AIRFLOW_HOME=str(home),
                AIRFLOW__CORE__LOAD_EXAMPLES="False",
                AIRFLOW__CORE__DAGS_FOLDER=str(dags),
                AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
                AIRFLOW_CONN_SFTP_RESUME_EXAMPLE=connection_json(server.info),
            )
            airflow = str(venv / "bin" / "airflow")
            listing = _run(
                [airflow, "providers", "list", "-o", "plain"],
                env=env,
                cwd=run_dir,
                what="airflow providers list",
            )
            if PROVIDER not in listing:
                raise SystemExit(f"airflow providers list does not show {PROVIDER}:\n{listing}")
            _run([airflow, "db", "migrate"], env=env, cwd=run_dir, what="airflow db migrate")
            out = _run(
                [
                    str(venv / "bin" / "python"),
                    str(script),
                    str(venv),
                    str(remote / "hook.bin"),
                    str(work / "local" / "hook.bin"),
                    str(dags),
                    str(remote / "dag.bin"),
                    str(work / "local" / "in" / "dag.bin"),
                ],
                env=env,
                cwd=run_dir,
                what="hook download and example DAG (dag.test) from the installed wheel",
            )
        finally:
            server.stop()
        report = json.loads(out.strip().splitlines()[-1])
        problems = []
        if report["hook_sha256"] != hook_digest or report["hook_size"] != size:
            problems.append(f"hook download: sha256 {report['hook_sha256']} != source {hook_digest}")
        if report["dag_state"] != "success" or report["dag_sha256"] != dag_digest:
            problems.append(f"DAG run {report['dag_state']}: sha256 {report['dag_sha256']} != {dag_digest}")
        if problems:
            raise SystemExit("; ".join(problems))
        print(
            f"wheel smoke: {PROVIDER} listed by `airflow providers list`; imported from {report['package']}"
        )
        print(f"wheel smoke: hook download of {size:,} bytes, sha256 {hook_digest[:16]}... equals the source")
        print(f"wheel smoke: example DAG run {report['dag_state']}, sha256 {dag_digest[:16]}... = the source")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--venv", type=Path, required=True, help="the venv the wheel is installed in")
    parser.add_argument("--size-mib", type=int, default=8, help="size of each downloaded file (MiB)")
    args = parser.parse_args()
    smoke(args.venv.resolve(), args.size_mib * MiB)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""
The demo behind ``./demo.sh``: one interrupted download, resumed by Airflow's own retry.

It starts a throwaway SFTP server on 127.0.0.1 (OpenSSH ``sshd`` when installed, else the embedded
asyncssh server), puts a fault proxy in front of it that cuts the link once, and runs the example
DAG ``example_sftp_resume_download`` with ``dag.test()`` on a private SQLite metadata DB. Everything
lives under ``.demo/`` in the repository and is stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024


def configure_airflow(workdir: Path) -> None:
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def start_server(kind: str, workdir: Path):  # type: ignore[no-untyped-def]
    from tests.support.keys import make_key
    from tests.support.servers import AsyncsshServer, OpenSSHServer, find_sshd

    client_key = make_key(workdir / "keys" / "id_ed25519")
    if kind in ("auto", "openssh") and find_sshd():
        try:
            return OpenSSHServer(workdir / "sshd", client_key)
        except (RuntimeError, OSError) as exc:
            if kind == "openssh":
                raise
            print(f"demo: OpenSSH sshd did not start ({exc}); using the embedded asyncssh server")
    return AsyncsshServer(workdir / "asyncssh", client_key)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=64, help="size of the file to download (MiB)")
    parser.add_argument(
        "--cut-at", type=float, default=0.45, help="fraction of the file after which the link drops"
    )
    parser.add_argument("--server", choices=("auto", "openssh", "asyncssh"), default="auto")
    parser.add_argument(
        "--progress-interval", type=float, help="seconds between progress lines (the example's default: 30)"
    )
    parser.add_argument("--rate-mb", type=float, help="cap the link at this many MB/s (default: no cap)")
    parser.add_argument("--result-json", type=Path, help="also write the task's XCom result here")
    parser.add_argument("--workdir", type=Path, default=DEMO, help="scratch directory (wiped first)")
    args = parser.parse_args()
    workdir: Path = args.workdir.resolve()

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    configure_airflow(workdir)

    from tests.support.airflow_env import connection_json, dag_bag, task_instance, xcom_return
    from tests.support.faultproxy import FaultProxy

    server = start_server(args.server, workdir)
    proxy = FaultProxy(server.info.port)
    try:
        source = workdir / "remote" / "outgoing" / "dump.tar.gz"
        source.parent.mkdir(parents=True)
        source.write_bytes(os.urandom(args.size_mib * MiB))
        source_digest = hashlib.sha256(source.read_bytes()).hexdigest()
        target = workdir / "local" / "in" / "dump.tar.gz"
        os.environ["AIRFLOW_CONN_SFTP_RESUME_EXAMPLE"] = connection_json(server.info, port=proxy.port)
        cut = int(args.size_mib * MiB * args.cut_at)
        proxy.cut_after(cut)
        if args.rate_mb:
            proxy.set_rate(args.rate_mb * 1e6)

        dag = dag_bag(ROOT / "example_dags").get_dag("example_sftp_resume_download")
        dag.get_task("fetch").retry_delay = timedelta(seconds=2)  # the example waits 30 s; the demo doesn't
        if args.progress_interval:
            dag.get_task("fetch").progress_interval = args.progress_interval
        print(
            f"\n=== demo: {server.info.name} SFTP server on 127.0.0.1:{server.info.port}, fault proxy on "
            f":{proxy.port} will cut the link after {cut / MiB:.1f} MiB of {args.size_mib} MiB ===\n"
            "=== the first try fails on purpose: Airflow logs the cut as 'Task failed with exception'\n"
            "=== and a traceback of about 110 lines ending in TransferInterrupted; that is expected.\n"
            "=== The retry and the summary follow. ===\n",
            flush=True,
        )
        dag_run = dag.test(run_conf={"remote_path": str(source), "local_path": str(target)})
        result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
        ti = task_instance(dag_run, "fetch")
    finally:
        proxy.stop()
        server.stop()

    print("\n=== demo: what happened ===")
    print(f"DAG run state:          {dag_run.state}")
    print(f"tries used:             {ti.try_number} (the link was cut {proxy.cuts} time(s))")
    if not isinstance(result, dict):
        print("no result: the task did not succeed")
        return 1
    if args.result_json:
        args.result_json.write_text(json.dumps({**result, "tries": ti.try_number, "cuts": proxy.cuts}))
    local_digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else "(missing)"
    print(
        f"last try resumed from:  {result['resumed_from']:,} bytes ({result['resumed_from'] / MiB:.1f} MiB)"
    )
    print(f"last try transferred:   {result['bytes_transferred']:,} bytes of {result['size']:,}")
    print(f"kept bytes checked by:  {', '.join(result['checks_passed']) or '-'}")
    print(f"source sha256:          {source_digest}")
    print(f"local  sha256:          {local_digest}")
    ok = (
        str(dag_run.state) == "success"
        and result["resumed_from"] > 0
        and local_digest == source_digest == result["sha256"]
    )
    leftovers = sorted(p.name for p in target.parent.iterdir() if p.name != target.name)
    print(f"left next to the file:  {leftovers or 'nothing'}")
    print(
        "RESULT: " + ("VERIFIED - resumed after the cut, and the file equals the source" if ok else "FAILED")
    )
    with contextlib.suppress(OSError):
        shutil.rmtree(workdir / "remote")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

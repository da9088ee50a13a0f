"""
A real task process stopped mid-download: SIGTERM, ``execution_timeout`` (SIGALRM) and SIGKILL.

Each victim is ``dag.test()`` in its own process (this module run as a script), downloading through a
fault proxy with ``max_connections=2`` (one segment read in-process, one by a worker process). The
test then checks what the victim left behind: the sidecar's durable offsets (bytes that really are in
the ``.part``), worker processes (by PID), and that the next try resumes to the right sha256.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from tests.conftest import sha256_file, write_random
from tests.e2e.test_dag_retries import make_dag
from tests.support.airflow_env import run_dag_test, xcom_return

if TYPE_CHECKING:
    from tests.e2e.conftest import DefineConnection
    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
SIZE = 48 * MiB
WORKER_MODULE = "airflow_provider_sftp_resume.core.io.worker"
pytestmark = pytest.mark.usefixtures("airflow_db")


def start_victim(tmp_path: Path, dag_id: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Run a download DAG with ``dag.test()`` in a new process (its own session: signals reach it only)."""
    log = open(tmp_path / f"{dag_id}.log", "wb")  # noqa: SIM115 - the child holds it; closed with the test dir
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.test_task_lifecycle", dag_id, json.dumps(kwargs)],
        env=os.environ.copy(),
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def victim_log(tmp_path: Path, dag_id: str) -> str:
    return (tmp_path / f"{dag_id}.log").read_text(errors="replace")[-4000:]


def worker_pids(parent: int) -> set[int]:
    """PIDs of the segment worker processes whose parent is ``parent``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
        if ppid == parent and WORKER_MODULE.encode() in cmdline:
            found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def survivors(pids: set[int], wait: float) -> set[int]:
    """The ``pids`` still running after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        alive = {pid for pid in pids if running(pid)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def wait_for(condition: Any, victim: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert victim.poll() is None, f"the victim ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def segments(target: Path) -> list[dict[str, int]]:
    state: dict[str, Any] = json.loads(LocalPaths.for_target(target).sidecar.read_text())
    result: list[dict[str, int]] = state["segments"]
    return result


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("stop", ["sigterm", "execution_timeout"])
def test_stopped_task_keeps_a_checkpoint_of_every_byte_it_wrote(
    stop: str, proxy_conn: FaultProxy, tmp_path: Path
) -> None:
    """
    SIGTERM (Airflow 2: on_kill, then an exception raised by the signal handler; Airflow 3: on_kill)
    and execution_timeout (an exception raised by the SIGALRM handler) stop the task inside the event
    loop. The try must unwind through its error path: the final checkpoint records what was written
    (periodic checkpoints are off here, so only that one can), and the segment workers are closed.
    """
    source = tmp_path / "remote.bin"
    digest = write_random(source, SIZE, seed=601)
    target = tmp_path / "local.bin"
    part = LocalPaths.for_target(target).part
    proxy_conn.set_rate(4_000_000)  # 12 s for the whole file: it is stopped well before the end
    kwargs: dict[str, Any] = {
        "remote_path": str(source),
        "local_path": str(target),
        "retries": 0,
        "stall_timeout": 600,
        "checkpoint_interval": 3600,  # no periodic checkpoint: what is durable comes from the last one
        "max_connections": 2,
    }
    if stop == "execution_timeout":
        kwargs["execution_timeout"] = 6
    dag_id = f"lifecycle_{stop}"
    victim = start_victim(tmp_path, dag_id, **kwargs)
    workers: set[int] = set()
    try:
        wait_for(lambda: proxy_conn.server_to_client > 8 * MiB, victim, "8 MiB had been read")
        workers = worker_pids(victim.pid)
        assert workers, "a segment worker process must be running (max_connections=2)"
        if stop == "sigterm":
            os.kill(victim.pid, signal.SIGTERM)
        victim.wait(timeout=120)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        left = survivors(workers, wait=3)
        kill_all(workers)
    log = victim_log(tmp_path, dag_id)
    assert not target.exists(), log
    kept = segments(target)
    durable = sum(s["done"] - s["start"] for s in kept)
    data = part.read_bytes()
    original = source.read_bytes()
    assert durable > 0, f"the sidecar records no durable byte, with {len(data)} bytes in the .part:\n{log}"
    for s in kept:  # every byte the sidecar claims is really there
        assert data[s["start"] : s["done"]] == original[s["start"] : s["done"]], s
    first = kept[0]  # written in the task process itself: the checkpoint must reach its very end
    assert not data[first["done"] : first["done"] + 4096].strip(b"\0"), (
        f"bytes past the checkpoint of segment 0 ({first}): the final checkpoint missed them"
    )
    assert not left, f"segment workers {sorted(left)} outlived the stopped task"
    assert "Task was destroyed but it is pending" not in log, log

    proxy_conn.set_rate(None)
    dag = make_dag(f"{dag_id}_next", remote_path=str(source), local_path=str(target), max_connections=2)
    dag_run = run_dag_test(dag)
    assert str(dag_run.state) == "success"
    result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
    assert isinstance(result, dict)
    assert result["resumed_from"] == durable
    assert result["bytes_transferred"] == SIZE - durable
    assert result["sha256"] == digest == sha256_file(target)


def replace_with_new_version(path: Path, seed: int) -> str:
    """Replace ``path`` as an uploader does (new inode via rename, new mtime); return the new sha256."""
    fresh = path.with_name(path.name + ".upload")
    new_digest = write_random(fresh, path.stat().st_size, seed=seed)
    mtime = int(path.stat().st_mtime) + 100
    os.utime(fresh, (mtime, mtime))
    os.replace(fresh, path)
    return new_digest


def test_sigkilled_task_leaves_no_worker_that_writes_later(
    proxy_conn: FaultProxy, openssh_server: ServerInfo, sftp_conn: DefineConnection, tmp_path: Path
) -> None:
    """
    kill -9 of the task process while its worker waits on a stalled link; the remote file is replaced;
    the retry downloads the new version. A worker that outlived its parent would wake up when the link
    recovers and write old-version bytes into the file the retry produced (same inode), under a
    sha256 computed from memory. Workers must die with their parent, and never write into a file
    they no longer own.
    """
    source = tmp_path / "remote.bin"
    write_random(source, SIZE, seed=701)
    target = tmp_path / "local.bin"
    proxy_conn.set_rate(4_000_000)
    kwargs = {
        "remote_path": str(source),
        "local_path": str(target),
        "retries": 0,
        "stall_timeout": 600,
        "max_connections": 2,
    }
    victim = start_victim(tmp_path, "lifecycle_kill9", **kwargs)
    workers: set[int] = set()
    try:

        def both_segments_progress() -> bool:
            sidecar = LocalPaths.for_target(target).sidecar
            if not sidecar.exists():
                return False
            return sum(s["done"] - s["start"] > MiB for s in segments(target)) >= 2

        wait_for(both_segments_progress, victim, "both segments had progressed")
        workers = worker_pids(victim.pid)
        assert workers, "a segment worker process must be running (max_connections=2)"
        proxy_conn.hold()  # the link stalls: the worker blocks on its reads
        time.sleep(0.5)
        os.kill(victim.pid, signal.SIGKILL)  # the task process only, as an OOM kill or a supervisor does
        victim.wait(timeout=30)
        left_after_kill = survivors(workers, wait=3)

        new_digest = replace_with_new_version(source, seed=702)
        direct = sftp_conn(openssh_server, conn_id="sftp_direct")
        dag = make_dag(
            "lifecycle_kill9_retry",
            sftp_conn_id=direct,
            remote_path=str(source),
            local_path=str(target),
            max_connections=2,
        )
        dag_run = run_dag_test(dag)
        proxy_conn.release()  # the stalled link recovers: an orphaned worker would get its bytes now
        time.sleep(2)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        proxy_conn.release()
        left_at_end = survivors(workers, wait=0)
        kill_all(workers)

    assert str(dag_run.state) == "success"
    result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
    assert isinstance(result, dict)
    assert result["restart_reason"], "the retry must have noticed the new version"
    on_disk = sha256_file(target)
    assert (result["sha256"], on_disk) == (new_digest, new_digest), (
        f"reported {result['sha256']}, on disk {on_disk}, new version {new_digest}; "
        f"workers alive after the kill: {sorted(left_after_kill)}"
    )
    assert not left_after_kill, f"segment workers {sorted(left_after_kill)} outlived the killed task"
    assert not left_at_end


def _run_victim(dag_id: str, kwargs: dict[str, Any]) -> None:
    if "execution_timeout" in kwargs:
        kwargs["execution_timeout"] = timedelta(seconds=kwargs["execution_timeout"])
    run_dag_test(make_dag(dag_id, **kwargs))


if __name__ == "__main__":
    _run_victim(sys.argv[1], json.loads(sys.argv[2]))

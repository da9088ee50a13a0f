"""
A real Airflow 3 deployment on 127.0.0.1, as a small production install runs it.

- :class:`PostgresServer`: Debian's PostgreSQL as the metadata DB, a throwaway cluster on a free
  port (run as the ``postgres`` user when we are root: PostgreSQL refuses to run as root).
- :class:`RedisServer`: Debian's ``redis-server`` as the Celery broker.
- :class:`AirflowDeployment`: ``airflow db migrate``, then the API server, the scheduler and the DAG
  processor (and Celery workers on demand) as subprocesses of one ``AIRFLOW_HOME``, authenticated by
  the SimpleAuthManager with a generated password.
- :class:`AirflowAPI`: a small client of the public REST API (``/api/v2``) with a JWT from
  ``POST /auth/token``.

Every process is started in its own session and stopped by its PID (its process group), even when a
test fails; its output goes to a log file that :meth:`Service.tail` shows.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from tests.support.ports import free_port, wait_for_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
#: Environment variable naming a Celery worker's host, read by :func:`worker_hostname`.
WORKER_NAME_ENV = "SFTP_RESUME_TEST_WORKER_NAME"

T = TypeVar("T")


def worker_hostname() -> str:
    """
    Return the host name Airflow records for a task instance (``[core] hostname_callable``).

    Both Celery workers of the test run on this one machine; each gets its own name, as each would
    have its own host in a real scale-out, so the task instances show which worker ran each try.
    """
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


class Service:
    """
    One long-running process: started in its own session, output to ``log_path``, stopped by PID.

    :param name: a short label for logs and errors
    :param argv: the command
    :param log_path: file that receives stdout and stderr
    :param env: the environment (default: inherited)
    :param user: run as this user (PostgreSQL refuses root)
    :param stop_signal: signal that asks the process to shut down cleanly
    :param cwd: working directory
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                user=user,
                cwd=cwd,
                start_new_session=True,  # its own process group: stopping it stops its children too
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the process group to stop; kill it if it has not stopped after ``timeout`` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, self.stop_signal)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        # Children left behind in the group (a task process, a log server) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the process's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def wait_until(what: str, check: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """
    Call ``check`` until it returns something other than ``None``; return that.

    :param what: what is awaited, for the error message
    :param check: returns ``None`` while not ready
    :param timeout: seconds before :class:`TimeoutError`
    :param interval: seconds between calls
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _private_dir(prefix: str, owner: str | None) -> Path:
    """A new 0700 directory under the system temp dir, owned by ``owner`` when given."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def find_postgres_bindir() -> Path | None:
    """Debian's PostgreSQL server binaries (``/usr/lib/postgresql/<version>/bin``), newest first."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    return candidates[0].parent if candidates else None


class PostgresServer:
    """
    A throwaway PostgreSQL cluster on 127.0.0.1 with a database ``airflow`` owned by user ``airflow``.

    The cluster lives in a new directory under the system temp dir (the ``postgres`` user cannot
    enter pytest's root-only temp dirs) and is deleted by :meth:`stop`.

    :param log_dir: where ``postgres.log`` goes
    """

    def __init__(self, log_dir: Path) -> None:
        bindir = find_postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = _private_dir("sftp-resume-pg-", self.user)
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.service: Service | None = None
        data = self.root / "data"
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        try:
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "airflow",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                user=self.user,
                cwd=self.root,
            )
            pwfile.unlink()
            self.service = Service(
                "postgres",
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    # A throwaway test cluster: durability is not what is tested here.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "max_connections=200",
                ],
                log_dir / "postgres.log",
                user=self.user,
                stop_signal=signal.SIGINT,  # "fast" shutdown: disconnect clients, stop
                cwd=self.root,
            )
            wait_for_port(self.port, timeout=30)
            self._create_database()
        except BaseException:
            self.stop()
            raise

    def _create_database(self) -> None:
        import psycopg

        def connect() -> psycopg.Connection[Any] | None:
            try:
                return psycopg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user="airflow",
                    password=self.password,
                    dbname="postgres",
                    autocommit=True,
                )
            except psycopg.OperationalError:  # still starting up
                return None

        with wait_until("PostgreSQL to accept logins", connect, timeout=30, interval=0.2) as conn:
            conn.execute("CREATE DATABASE airflow")

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of the ``airflow`` database."""
        return f"{driver}://airflow:{self.password}@127.0.0.1:{self.port}/airflow"

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """
    Debian's ``redis-server`` on a free port of 127.0.0.1, in memory only (no RDB/AOF files).

    :param workdir: its working directory and log
    """

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.service = Service(
            "redis",
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            workdir / "redis.log",
            cwd=workdir,
        )
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.service.stop()


class AirflowDeployment:
    """
    Airflow's components as subprocesses sharing one ``AIRFLOW_HOME``.

    :param home: the ``AIRFLOW_HOME`` (config, logs, generated passwords file)
    :param sql_alchemy_conn: the metadata DB
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``
    :param broker_url: Celery broker (CeleryExecutor only)
    :param dags_folder: the DAGs folder
    :param extra_env: more settings for every component (``AIRFLOW__...`` variables)
    """

    username = "admin"

    def __init__(
        self,
        home: Path,
        *,
        sql_alchemy_conn: str,
        executor: str = "LocalExecutor",
        broker_url: str | None = None,
        dags_folder: Path = EXAMPLE_DAGS,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.executor = executor
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.password = secrets.token_urlsafe(18)
        self.services: list[Service] = []
        #: Services this deployment uses but does not own (the DB, the broker), shown in :meth:`report`.
        self.backing: list[Service] = []
        self.workers: dict[str, Service] = {}
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "simple_auth_manager_passwords.json"
        # Written before the API server starts, so it never generates (and prints) a password.
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps({self.username: self.password}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "PYTHONPATH": str(REPO_ROOT),
                "AIRFLOW__CORE__EXECUTOR": executor,
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__CORE__PARALLELISM": "4",
                # Log servers of the scheduler and triggerer: free ports, not the shared defaults.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            }
        )
        if broker_url is not None:
            env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + sql_alchemy_conn.replace("+psycopg2", "")
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "1"
        env.update(extra_env or {})
        self.env = env

    # -- lifecycle --------------------------------------------------------------------------------

    def airflow(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]

    def start(self, timeout: float = 240.0) -> None:
        """Migrate the DB, start API server, scheduler and DAG processor, wait until they are up."""
        log_dir = self.home / "process-logs"
        log_dir.mkdir(exist_ok=True)
        with open(log_dir / "db-migrate.log", "wb") as log:
            subprocess.run(
                self.airflow("db", "migrate"),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=timeout,
                cwd=self.home,
            )
        for name, args in (
            ("api-server", ("api-server", "--host", "127.0.0.1", "--port", str(self.api_port))),
            ("scheduler", ("scheduler",)),
            ("dag-processor", ("dag-processor",)),
        ):
            self.services.append(
                Service(name, self.airflow(*args), log_dir / f"{name}.log", env=self.env, cwd=self.home)
            )
        wait_until("the API server, scheduler and DAG processor to report healthy", self._healthy, timeout)

    def start_celery_worker(self, name: str, *, private_root: Path | None = None) -> Service:
        """
        Start ``airflow celery worker`` with concurrency 1, recorded on task instances as host ``name``.

        It serves no logs of its own: the workers share this machine's ``AIRFLOW_HOME/logs``, as
        workers on several hosts would share a log volume or remote logging.

        :param name: the worker's name, and the host name its task instances record
        :param private_root: give the worker a disk of its own, as a worker on its own host (or a
            pod) has: its ``HOME``, ``TMPDIR`` and working directory are made under this directory,
            which no other worker sees. Without it the worker inherits this process's.
        """
        env = dict(self.env)
        env[WORKER_NAME_ENV] = name
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = f"{__name__}.worker_hostname"
        cwd = self.home
        if private_root is not None:
            dirs = {key: private_root / key.lower() for key in ("HOME", "TMPDIR", "WORK")}
            for path in dirs.values():
                path.mkdir(parents=True, exist_ok=True)
            env["HOME"], env["TMPDIR"] = str(dirs["HOME"]), str(dirs["TMPDIR"])
            cwd = dirs["WORK"]
        worker = Service(
            f"celery-worker-{name}",
            self.airflow(
                "celery",
                "worker",
                "--concurrency",
                "1",
                "--celery-hostname",
                f"{name}@%h",
                "--skip-serve-logs",
            ),
            self.home / "process-logs" / f"celery-worker-{name}.log",
            env=env,
            cwd=cwd,
        )
        self.services.append(worker)
        self.workers[name] = worker
        return worker

    def wait_for_workers(self, timeout: float = 120.0) -> None:
        """Wait until every started Celery worker has joined the broker (``celery inspect ping``)."""

        def ready() -> bool | None:
            for worker in self.workers.values():
                if not worker.alive():
                    raise RuntimeError(f"{worker.name} exited:\n{worker.tail()}")
            logs = [w.log_path.read_text(errors="replace") for w in self.workers.values()]
            return True if all(" ready." in text for text in logs) else None

        wait_until("the Celery workers to be ready", ready, timeout)

    def _healthy(self) -> bool | None:
        for service in self.services:
            if not service.alive():
                code = service.process.returncode
                raise RuntimeError(f"{service.name} exited with {code}:\n{service.tail()}")
        try:
            health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None
        components = ("metadatabase", "scheduler", "dag_processor")
        if all((health.get(c) or {}).get("status") == "healthy" for c in components):
            return True
        return None

    def stop(self) -> None:
        """Stop every component (workers first), each by its PID."""
        for service in reversed(self.services):
            service.stop()

    def report(self, lines: int = 80) -> str:
        """The tail of every component's log, for a failed test's output."""
        parts = [
            f"===== {s.name} (pid {s.pid}) {s.log_path}\n{s.tail(lines)}"
            for s in [*self.backing, *self.services]
        ]
        migrate = self.home / "process-logs" / "db-migrate.log"
        if migrate.exists():
            parts.insert(0, f"===== db migrate\n{migrate.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def secrets(self) -> list[str]:
        """The deployment's secrets: UI password, DB password, JWT secret, API secret key, Fernet key."""
        db_password = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("://", 1)[1].split("@")[0]
        keys = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY")
        return [self.password, db_password.split(":", 1)[1], *(self.env[k] for k in keys)]

    def files_containing(self, needles: list[str]) -> list[str]:
        """
        Files written by the deployment (its logs, task logs, generated config) that contain any of
        ``needles``; the password file the admin's password lives in is not searched.

        :param needles: strings that must not be written anywhere
        """
        found = []
        paths = [*self.home.rglob("*"), *(s.log_path for s in self.backing)]
        for path in paths:
            if not path.is_file() or path.name == "simple_auth_manager_passwords.json":
                continue
            text = path.read_bytes()
            found.extend(f"{path}: {needle[:4]}..." for needle in needles if needle.encode() in text)
        return found

    def api(self) -> AirflowAPI:
        """A REST API client logged in as the admin user."""
        return AirflowAPI.login(self.base_url, self.username, self.password)


class AirflowAPI:
    """
    The public REST API (``/api/v2``) with a bearer token from the auth manager's ``POST /auth/token``.

    :param base_url: the API server
    :param token: a JWT
    """

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.client = httpx.Client(
            base_url=f"{base_url}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> AirflowAPI:
        response = httpx.post(
            f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        response.raise_for_status()
        return cls(base_url, response.json()["access_token"])

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        """Send a request; fail with the server's answer unless the status is ``expect``."""
        response = self.client.request(method, path, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: object, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: object, **kwargs: Any) -> Any:
        return self.request("PATCH", path, json=body, **kwargs)

    # -- the calls the tests make ------------------------------------------------------------------

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of a task instance, oldest first (the current one included)."""
        body = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        tries: list[dict[str, Any]] = sorted(body["task_instances"], key=lambda t: t["try_number"])
        return tries

    def xcom_return(self, dag_id: str, run_id: str, task_id: str) -> Any:
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"deserialize": "true"},
        )
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def log_text(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task log of one try, as the UI shows it: one line per event."""
        body = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        lines = []
        for event in body["content"]:
            if isinstance(event, str):
                lines.append(event)
            else:
                lines.append(" ".join(str(event.get(k, "")) for k in ("level", "event", "error_detail")))
        return "\n".join(lines)


@contextlib.contextmanager
def deployment_context(
    tmp: Path,
    *,
    executor: str,
    celery_workers: tuple[str, ...] = (),
    dags_folder: Path = EXAMPLE_DAGS,
    extra_env: dict[str, str] | None = None,
    worker_roots: dict[str, Path] | None = None,
) -> Iterator[AirflowDeployment]:
    """
    PostgreSQL (+ Redis for Celery) and an Airflow deployment in ``tmp``; everything stopped on exit.

    :param tmp: a directory for the deployment's files
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``
    :param celery_workers: names of the Celery workers to start
    :param dags_folder: the DAGs folder
    :param extra_env: more settings for every component
    :param worker_roots: per worker name, a private directory for its HOME, TMPDIR and working dir
        (see :meth:`AirflowDeployment.start_celery_worker`)
    """
    with contextlib.ExitStack() as stack:
        postgres = PostgresServer(tmp / "process-logs")
        stack.callback(postgres.stop)
        backing = [postgres.service] if postgres.service else []
        broker_url = None
        if executor == "CeleryExecutor":
            redis = RedisServer(tmp / "redis")
            stack.callback(redis.stop)
            backing.append(redis.service)
            broker_url = redis.url
        deployment = AirflowDeployment(
            tmp / "airflow-home",
            sql_alchemy_conn=postgres.url(),
            executor=executor,
            broker_url=broker_url,
            dags_folder=dags_folder,
            extra_env=extra_env,
        )
        stack.callback(deployment.stop)
        deployment.backing = backing
        try:
            deployment.start()
            for name in celery_workers:
                deployment.start_celery_worker(name, private_root=(worker_roots or {}).get(name))
            if celery_workers:
                deployment.wait_for_workers()
        except Exception as error:
            raise RuntimeError(f"the deployment did not start: {error}\n{deployment.report()}") from error
        yield deployment

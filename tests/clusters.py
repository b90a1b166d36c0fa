"""Throwaway PostgreSQL 15 clusters for the failover and restore drills.

Each cluster is its own data directory under a fresh folder in /tmp, on a port of its own
(free when chosen), with its socket in that folder: nothing of the machine's main cluster at
5432 is touched. The server runs as the ``postgres`` user when the tests run as root (it
refuses root). :class:`Clusters` stops and removes every cluster it made, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg

from matchhub.cli.processes import free_port


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "pg_ctl").exists():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").exists():
            return candidate
    raise RuntimeError("PostgreSQL's server programs (pg_ctl, initdb) are not installed")


BIN = _bindir()
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def run(*command: str | Path, timeout: float = 120) -> str:
    args = [*AS_POSTGRES, *(str(c) for c in command)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


class Cluster:
    def __init__(self, root: Path, name: str, port: int | None = None) -> None:
        self.name = name
        self.data = root / name
        self.socket = root / "sock"
        self.port = port or free_port()
        self.log = root / f"{name}.log"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def configure(self, **settings: str | int) -> None:
        """Append settings to postgresql.auto.conf (read at the next start or reload)."""
        lines = "".join(f"{name} = '{value}'\n" for name, value in settings.items())
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(lines)

    def initdb(self, **settings: str | int) -> Cluster:
        run(BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._network(**settings)
        return self

    def _network(self, **settings: str | int) -> None:
        self.configure(
            listen_addresses="127.0.0.1",
            port=self.port,
            unix_socket_directories=str(self.socket),
            max_connections=200,
            shared_buffers="64MB",
            **settings,
        )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")

    def start(self) -> Cluster:
        run(BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            run(BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def promote(self) -> None:
        run(BIN / "pg_ctl", "-D", self.data, "-w", "-t", "60", "promote")

    def query(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        # Nothing in a drill waits long: a statement that would is a broken drill, not a slow one.
        info = f"{self.conninfo(database)} options='-c statement_timeout=60000'"
        with psycopg.connect(info, autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []

    def wait_writable(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.query("SELECT pg_is_in_recovery()") == [(False,)]:
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not become writable; see {self.log}")
            time.sleep(0.1)

    def replica(self, name: str, application_name: str, **settings: str | int) -> Cluster:
        """A streaming standby of this cluster, made by pg_basebackup, started."""
        standby = Cluster(self.data.parent, name)
        run(BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres",
            "-D", standby.data, "-c", "fast", "-X", "stream")  # fmt: skip
        standby.configure(
            port=standby.port,
            primary_conninfo=f"host=127.0.0.1 port={self.port} user=postgres "
            f"application_name={application_name}",
            **settings,
        )
        (standby.data / "standby.signal").touch()
        return standby.start()

    def base_backup(self, target: Path) -> None:
        run(BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres",
            "-D", target, "-c", "fast", "-X", "stream")  # fmt: skip


class Clusters:
    """A folder for clusters (owned by the server's user) that is always cleaned up."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="matchhub-drill-"))
        self.made: list[Cluster] = []

    def __enter__(self) -> Clusters:
        (self.root / "sock").mkdir()
        (self.root / "archive").mkdir()
        if AS_POSTGRES:
            shutil.chown(self.root, "postgres", "postgres")
            for sub in ("sock", "archive"):
                shutil.chown(self.root / sub, "postgres", "postgres")
        return self

    def new(self, name: str, **settings: str | int) -> Cluster:
        cluster = Cluster(self.root, name).initdb(**settings)
        self.made.append(cluster)
        return cluster

    def adopt(self, cluster: Cluster) -> Cluster:
        self.made.append(cluster)
        return cluster

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for cluster in self.made:
            # Best effort: the postmaster is killed below if it still runs.
            with contextlib.suppress(Exception):
                cluster.stop("immediate")
            pid_file = cluster.data / "postmaster.pid"
            if pid_file.exists():
                with contextlib.suppress(ValueError, OSError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

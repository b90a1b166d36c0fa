"""Start ``matchhub serve`` (or ``matchhub worker``) as a child process and wait until it is
up: used by the demo, the end-to-end tests that kill the broker, and the benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from matchhub.agency.connector.client import AgencyCredentials, make_client


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class BrokerProcess:
    def __init__(
        self,
        home: Path,
        probe: AgencyCredentials,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.home = home
        self.probe = probe
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.log = log or home / "broker.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None  # noqa: S101 (started)
        return self.process.pid

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BrokerProcess:
        command = [
            sys.executable,
            "-m",
            "matchhub",
            "--home",
            str(self.home),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        with make_client(self.url, self.probe, timeout=httpx.Timeout(2.0)) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the broker exited with status {self.process.returncode}; see {self.log}"
                    )
                try:
                    if client.get("/readyz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the broker did not become ready in {timeout}s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: the crash the restart tests simulate."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class WorkerProcess(BrokerProcess):
    """``matchhub worker``: up once it has announced itself (its log says so)."""

    READY = b"worker running"

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        command = [sys.executable, "-m", "matchhub", "--home", str(self.home), "worker"]
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the worker exited with status {self.process.returncode}; see {self.log}"
                )
            with self.log.open("rb") as log:
                log.seek(offset)
                if self.READY in log.read():
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the worker did not start in {timeout}s; see {self.log}")

"""``python -m benchmarks.hardening``: the broker under slow and hostile clients (issue 13).

Two figures, each against a real ``matchhub serve`` on a fresh hub (SQLite, its own state
folder), with a certificate the hub's CA signed but the registry never recorded:

* **slow clients**: ``--slow`` (40) connections send a lookup's header and then one byte of its
  body every ``--drip`` (5) seconds, reconnecting whenever the broker closes one, while
  ``--honest`` (50) clients of a registered consumer look up as fast as they are answered, for
  ``--seconds`` (60): how many honest lookups were answered (and how many timed out, at 10 s);
* **big bodies**: three 200 MB lookup bodies at once: the broker's resident memory before and at
  its peak, and the time each took to its ``401``.

It uses nothing but ``python -m matchhub`` and the hub's PKI functions, so the same script
measures an older tree: ``PYTHONPATH=/path/to/that/src python -m benchmarks.hardening`` (the
"before" figures in docs/benchmarks.md were taken so, on main before the fix).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

import matchhub
from matchhub.keystore import pki
from matchhub.keystore.service import load_ca
from matchhub.kit.settings import StatePaths

MIB = 2**20
LOOKUP = {"purpose": "eligibility_review", "tokens": ["ab" * 32] * 10}


@dataclass
class Credentials:
    cert: Path
    key: Path
    ca: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(self.cert, self.key)
        return context


def _matchhub(home: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "matchhub", "--home", str(home), *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    honest: Credentials
    ghost: Credentials
    slowpoke: Credentials  # a registered consumer's second agency, for --slow-cert registered
    slowpoke: Credentials  # a registered consumer's second agency, for --slow-cert registered

    def rss_mib(self, field: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextmanager
def _broker(root: Path) -> Iterator[Broker]:
    home = root / "hub"
    _matchhub(home, "init")
    for code in ("molsa", "slowpoke"):
        _matchhub(
            home,
            "agency",
            "add",
            code,
            "--kind",
            "welfare",
            "--name",
            code,
            "--out",
            str(root / code),
        )
    ca = load_ca(StatePaths(home))
    ghost = pki.issue_client(ca, "matchhub", "ghost", "BENCH-ONLY unregistered")
    (root / "ghost").mkdir()
    (root / "ghost" / "ghost.pem").write_bytes(pki.cert_pem(ghost.certificate))
    (root / "ghost" / "ghost-key.pem").write_bytes(pki.key_pem(ghost.key))
    port = _free_port()
    env = {
        **os.environ,
        "MATCHHUB_PORT": str(port),
        # Capacity, not policy, is measured: the per-agency lookup rate is lifted.
        "MATCHHUB_LOOKUP_RATE_PER_SECOND": "1000000000",
        "MATCHHUB_LOOKUP_BURST": "1000000000",
    }
    log = (root / "broker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "matchhub", "--home", str(home), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ca_file = home / "pki" / "ca.pem"
    broker = Broker(
        f"https://127.0.0.1:{port}",
        port,
        process,
        Credentials(root / "molsa" / "molsa.pem", root / "molsa" / "molsa-key.pem", ca_file),
        Credentials(root / "ghost" / "ghost.pem", root / "ghost" / "ghost-key.pem", ca_file),
        Credentials(
            root / "slowpoke" / "slowpoke.pem", root / "slowpoke" / "slowpoke-key.pem", ca_file
        ),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with httpx.Client(verify=broker.honest.context()) as client:
                    if client.get(broker.url + "/v1/whoami").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "broker.log").read_text()[-2000:])
            time.sleep(0.2)
        yield broker
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _tls_socket(broker: Broker, creds: Credentials) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", broker.port), timeout=30)
    return creds.context().wrap_socket(raw, server_hostname="localhost")


def _header(length: int) -> bytes:
    return (
        b"POST /v1/lookups HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % length
    )


def _slow_client(
    broker: Broker, creds: Credentials, drip: float, stop: threading.Event, counts: dict[str, int]
) -> None:
    while not stop.is_set():
        try:
            sock = _tls_socket(broker, creds)
        except OSError:
            counts["refused"] += 1
            stop.wait(drip)
            continue
        counts["connections"] += 1
        try:
            sock.sendall(_header(1000))
            sock.settimeout(drip)
            while not stop.is_set():
                try:
                    sock.recv(1)  # (a TLS 1.3 session ticket is not an answer: recv waits on)
                    break  # answered or closed: start again
                except TimeoutError:
                    sock.sendall(b" ")
        except OSError:
            pass
        finally:
            sock.close()


def slow_clients(args: argparse.Namespace, broker: Broker) -> dict[str, object]:
    stop = threading.Event()
    slow_counts = {"connections": 0, "refused": 0}
    answered, timed_out, other = [0], [0], [0]
    lock = threading.Lock()

    def honest() -> None:
        with httpx.Client(verify=broker.honest.context(), timeout=10) as client:
            while not stop.is_set():
                try:
                    status = client.post(broker.url + "/v1/lookups", json=LOOKUP).status_code
                except httpx.TimeoutException:
                    with lock:
                        timed_out[0] += 1
                    continue
                except httpx.HTTPError:
                    status = 0
                with lock:
                    if status == 200:
                        answered[0] += 1
                    else:
                        other[0] += 1

    creds = broker.slowpoke if args.slow_cert == "registered" else broker.ghost
    slow = [
        threading.Thread(
            target=_slow_client, args=(broker, creds, args.drip, stop, slow_counts), daemon=True
        )
        for _ in range(args.slow)
    ]
    for thread in slow:
        thread.start()
    time.sleep(args.drip + 1)  # every slow sender has begun its request
    load = os.getloadavg()
    clients = [threading.Thread(target=honest, daemon=True) for _ in range(args.honest)]
    for thread in clients:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in clients:
        thread.join(timeout=15)
    return {
        "seconds": args.seconds,
        "slow_clients": args.slow,
        "slow_certificate": args.slow_cert,
        "honest_clients": args.honest,
        "honest_lookups_answered": answered[0],
        "honest_lookups_timed_out": timed_out[0],
        "honest_other_answers": other[0],
        "slow_connections_made": slow_counts["connections"],
        "load_average": load,
    }


def _answered(sock: ssl.SSLSocket) -> bytes | None:
    """What the broker has answered so far (``b""``: it closed), without waiting; ``None``
    while it has said nothing (TLS records that carry no data, a session ticket, aside)."""
    sock.setblocking(False)
    try:
        return sock.recv(200)
    except ssl.SSLWantReadError:
        return None
    finally:
        sock.setblocking(True)


def _big_body(broker: Broker, size: int, result: dict[str, object]) -> None:
    """Send ``size`` bytes of a lookup body, watching for an answer between blocks; the time
    to the answer (or to the broker closing the connection) and its status line."""
    began = time.perf_counter()
    sock = _tls_socket(broker, broker.ghost)
    sent, block = 0, b" " * MIB
    answer: bytes | None = None
    try:
        sock.sendall(_header(size))
        while sent < size and answer is None:
            sock.sendall(block[: min(MIB, size - sent)])
            sent += min(MIB, size - sent)
            answer = _answered(sock)
        if answer is None:
            sock.settimeout(120)
            answer = sock.recv(200)
    except OSError as exc:
        answer = f"connection closed ({type(exc).__name__})".encode()
    finally:
        sock.close()
    result.update(
        seconds=round(time.perf_counter() - began, 2),
        sent_mib=round(sent / MIB),
        answer=(answer or b"").split(b"\r\n", 1)[0].decode(errors="replace") or "closed",
    )


def big_bodies(args: argparse.Namespace, broker: Broker) -> dict[str, object]:
    before = broker.rss_mib()
    results: list[dict[str, object]] = [{} for _ in range(3)]
    senders = [
        threading.Thread(target=_big_body, args=(broker, args.body_mib * MIB, r)) for r in results
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=600)
    return {
        "bodies": 3,
        "body_mib": args.body_mib,
        "broker_rss_mib_before": round(before),
        "broker_peak_rss_mib": round(broker.rss_mib("VmHWM")),
        "each": results,
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hardening")
    parser.add_argument("--slow", type=int, default=40)
    parser.add_argument("--honest", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--drip", type=float, default=5.0)
    parser.add_argument("--body-mib", type=int, default=200)
    parser.add_argument(
        "--slow-cert",
        choices=["unregistered", "registered"],
        default="unregistered",
        help="whose certificate the slow clients present (registered: a consumer's)",
    )
    parser.add_argument("--only", choices=["slow", "big"], action="append")
    args = parser.parse_args(argv)
    figures: dict[str, object] = {"matchhub": matchhub.__file__}
    with tempfile.TemporaryDirectory(prefix="matchhub-hardening-") as tmp:
        if not args.only or "big" in args.only:
            with _broker(Path(tmp) / "big") as broker:
                figures["big_bodies"] = big_bodies(args, broker)
        if not args.only or "slow" in args.only:
            with _broker(Path(tmp) / "slow") as broker:
                figures["slow_clients"] = slow_clients(args, broker)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load and fault test of the service, on loopback only, bounded in time and requests.

Run: .venv/bin/python bench/bench_service.py [--clients 64] [--seconds 60] [--kill]

Starts `chokepoint serve` on 127.0.0.1 with a fresh SQLite database, drives it with N
concurrent clients posting determinations, and reports throughput, p50/p99 latency and any
5xx. Then it checks the audit log: one record per acknowledged request, chain intact.
With --kill, the server is killed with SIGKILL in the middle of the load, restarted, and the
chain is verified: no acknowledged record may be lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TXN = {"date": "2024-09-16", "from_country": "US", "to_country": "CN",
       "exporter": {"name": "Example Inc", "country": "US", "headquartered_in": "US"},
       "item": {"kind": "chip", "made_in": "US", "chip": {"tops": 375, "bit_length": 16,
                                                          "die_area_mm2": 720,
                                                          "datacenter": True}},
       "parties": [{"role": "end_user", "name": "Example Cloud", "country": "CN",
                    "headquartered_in": "CN", "designations": []}], "end_uses": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(url: str, port: int, env: dict[str, str], workers: int = 1,
          rate_limit: float = 1e6) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "chokepoint", "serve", "--port", str(port),
                             "--database", url, "--workers", str(workers),
                             "--rate-limit", str(rate_limit)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


async def load(port: int, key: str, clients: int, seconds: float, max_requests: int
               ) -> tuple[list[float], int, int, int, int]:
    """N closed-loop clients, each on its own keep-alive connection, for ``seconds``.

    The client is a minimal HTTP/1.1 one on asyncio streams (one request prepared once,
    the status line and Content-Length read back): on this two-core machine the load
    generator shares the cores with the server, and httpx spent about 0.9 ms of CPU per
    request, most of a core at these rates."""
    latencies: list[float] = []
    ok = errors5xx = failed = limited = 0
    stop = time.perf_counter() + seconds
    sent = 0
    body = json.dumps(TXN).encode()
    request = (f"POST /v1/determinations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"X-API-Key: {key}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await asyncio.wait_for(reader.readexactly(length), 10)
        return status

    async def client(i: int) -> None:
        nonlocal ok, errors5xx, failed, sent, limited
        # connections opened a few ms apart, before the clock starts: opened all at once,
        # the first server worker to wake accepts nearly all of them, and a keep-alive
        # connection stays with the worker that accepted it
        await asyncio.sleep(i * 0.01)
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            conn = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            conn = None
        await started.wait()
        while time.perf_counter() < stop and sent < max_requests:
            sent += 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                status = await exchange(*conn)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    TimeoutError, ValueError, IndexError):
                failed += 1
                if conn is not None:
                    conn[1].close()
                conn = None
                await asyncio.sleep(0.05)
                continue
            latencies.append(time.perf_counter() - t0)
            if status == 200:
                ok += 1
            elif status == 429:
                limited += 1
            elif status >= 500:
                errors5xx += 1
        if conn is not None:
            conn[1].close()

    started = asyncio.Event()
    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(clients * 0.01 + 0.2)
    stop = time.perf_counter() + seconds
    started.set()
    await asyncio.gather(*tasks)
    return latencies, ok, errors5xx, failed, limited


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--rate-limit", type=float, default=1e6,
                        help="the server's per-key rate limit (requests/s): lifted by "
                        "default, so that the figures are the server's, not the limiter's")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="uvicorn worker processes of the server under test")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chokepoint-load-"))
    env = {**os.environ, "CHOKEPOINT_DATA_DIR": str(tmp)}
    url = f"sqlite:///{tmp / 'load.db'}"
    key = subprocess.run([sys.executable, "-m", "chokepoint", "keys", "create", "--role",
                          "admin", "--database", url], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    port = free_port()
    server = start(url, port, env, args.server_workers, args.rate_limit)
    try:
        if args.kill:
            async def killer() -> None:
                await asyncio.sleep(args.seconds / 2)
                os.kill(server.pid, signal.SIGKILL)

            async def both() -> tuple[list[float], int, int, int, int]:
                killing = asyncio.create_task(killer())
                result = await load(port, key, args.clients, args.seconds, args.max_requests)
                await killing
                return result

            lat, ok, e5, failed, limited = asyncio.run(both())
            server.wait()
            server = start(url, port, env, args.server_workers, args.rate_limit)
        else:
            lat, ok, e5, failed, limited = asyncio.run(load(port, key, args.clients, args.seconds,
                                                   args.max_requests))
    finally:
        server.terminate()
        server.wait()
    verify = subprocess.run([sys.executable, "-m", "chokepoint", "audit", "verify",
                             "--database", url], env=env, capture_output=True, text=True)
    records = int(verify.stdout.split()[0]) if verify.stdout else -1
    print(f"{args.clients} clients for {args.seconds:.0f} s: {ok} determinations acknowledged, "
          f"{ok / args.seconds:,.0f}/s; p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms;"
          f" 5xx: {e5}; refused by the rate limit (429): {limited}; connection failures: "
          f"{failed}")
    print(f"audit log: {records} records ({'chain intact' if verify.returncode == 0 else 'BROKEN'}"
          f"); acknowledged {ok} -> "
          + ("every acknowledged request is recorded" if records >= ok else "RECORDS LOST"))


if __name__ == "__main__":
    main()

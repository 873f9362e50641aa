"""Benchmark of the scoring server: scored submissions per second and p50/p99 latency.

Starts ``aar serve`` (SQLite, WAL) in a subprocess on a fresh data dir, registers a synthetic
2,000-example testbed, creates one agent per client, then drives POST /v1/submissions from 16
concurrent keep-alive connections (a minimal asyncio HTTP/1.1 load generator, so that the client
costs little CPU) with pre-serialised bodies. Each run measures for ``--seconds`` after a warm-up;
the figures reported are medians over ``--runs`` runs.

    python benchmarks/bench_server.py --workers 2 --runs 3 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ADMIN = "bench-admin-token-0123456789abcdef"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_bundle(n: int, seed: int = 0) -> dict:
    """A synthetic VaultBundle dict (format 2, no final split) with ``n`` test examples."""
    rng = np.random.default_rng(seed)
    ids = [f"ex{i:06d}" for i in range(n)]
    labels = rng.integers(0, 2, n)

    def run(acc: float) -> dict:
        right = rng.random(n) < acc
        p = np.where(right == (labels == 1), 0.8, 0.2)
        return dict(zip(ids, p.tolist(), strict=True))

    return {
        "testbed_id": "bench",
        "description": "benchmark testbed",
        "labels": dict(zip(ids, labels.tolist(), strict=True)),
        "references": {"weak": [run(0.65)], "ceiling": [run(0.9)]},
    }


def request_bytes(token: str, body: bytes) -> bytes:
    """One raw HTTP/1.1 POST /v1/submissions request."""
    head = (
        f"POST /v1/submissions HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:]) if k.lower() == b"content-length"
    )
    await reader.readexactly(length)
    return status


async def client_loop(
    port: int,
    requests: list[bytes],
    stop_at: float,
    measure_from: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    """Send requests back to back on one keep-alive connection until ``stop_at``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        writer.write(requests[i % len(requests)])
        status = await read_response(reader)
        t1 = time.perf_counter()
        i += 1
        if t0 >= measure_from:
            latencies.append(t1 - t0)
            if status != 201:
                errors.append(status)
    writer.close()


async def drive(port: int, per_client: list[list[bytes]], seconds: float, warmup: float) -> dict:
    """One measured run with one connection per client."""
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    lat: list[list[float]] = [[] for _ in per_client]
    errors: list[int] = []
    await asyncio.gather(
        *(client_loop(port, reqs, stop_at, measure_from, lat[k], errors) for k, reqs in enumerate(per_client))
    )
    all_lat = np.array([x for lst in lat for x in lst])
    return {
        "scores_per_s": all_lat.size / seconds,
        "p50_ms": float(np.percentile(all_lat, 50) * 1e3),
        "p99_ms": float(np.percentile(all_lat, 99) * 1e3),
        "n": int(all_lat.size),
        "errors": len(errors),
    }


def main() -> None:
    """Run the benchmark and print (and save) the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--ladder", choices=["paired", "fixed"], default="paired", help="Ladder rule")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_server.json")
    args = ap.parse_args()

    from aar.client import Client

    data_dir = Path(tempfile.mkdtemp(prefix="aar-bench-"))
    port = free_port()
    env = {**os.environ, "AAR_ADMIN_TOKEN": ADMIN}
    cmd = [
        sys.executable,
        "-m",
        "aar.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        str(args.workers),
        "--budget-per-hour",
        "-1",
        "--budget-total",
        "-1",
        "--ladder",
        args.ladder,
    ]
    proc = subprocess.Popen(cmd, env=env)
    try:
        admin = Client(f"http://127.0.0.1:{port}", ADMIN)
        for _ in range(300):
            try:
                admin.health()
                break
            except Exception:
                time.sleep(0.1)
        bundle = make_bundle(args.n_test)
        admin.register_testbed(bundle)
        ids = sorted(bundle["labels"])
        rng = np.random.default_rng(1)
        per_client = []
        for k in range(args.clients):
            token = admin.create_agent(f"bench-{k}").token
            with Client(f"http://127.0.0.1:{port}", token) as c:
                sha = c.upload_artifact(f"method {k}".encode()).sha256
            reqs = []
            for _ in range(8):
                body = {
                    "testbed_id": "bench",
                    "example_ids": ids,
                    "probabilities": np.round(rng.random(len(ids)), 6).tolist(),
                    "artifact_sha256": sha,
                    "description": "benchmark",
                    "method": "random",
                }
                reqs.append(request_bytes(token, json.dumps(body).encode()))
            per_client.append(reqs)
        runs = [asyncio.run(drive(port, per_client, args.seconds, args.warmup)) for _ in range(args.runs)]
        for r in runs:
            print(
                f"run: {r['scores_per_s']:.0f} scores/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
                f"  ({r['n']} requests, {r['errors']} errors)"
            )
        med = {k: statistics.median(r[k] for r in runs) for k in ("scores_per_s", "p50_ms", "p99_ms")}
        result = {
            "benchmark": "bench_server",
            "workers": args.workers,
            "clients": args.clients,
            "n_test": args.n_test,
            "ladder": args.ladder,
            "runs": runs,
            "median": med,
            "seconds_per_run": args.seconds,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "db": "sqlite (WAL)",
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        print(
            f"median over {args.runs} runs: {med['scores_per_s']:.0f} scores/s, "
            f"p50 {med['p50_ms']:.1f} ms, p99 {med['p99_ms']:.1f} ms"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()

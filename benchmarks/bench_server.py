"""Benchmark of the scoring server: scored submissions per second and p50/p99 latency.

For each database (SQLite in WAL mode, and PostgreSQL at 127.0.0.1:5432 with trust auth, in a fresh
``aar_bench_<random>`` database that is dropped afterwards) it starts ``aar serve`` in a subprocess on
a fresh data dir, registers a synthetic 2,000-example testbed, creates one agent per client, then
drives POST /v1/submissions from 16 concurrent keep-alive connections (a minimal asyncio HTTP/1.1
load generator, so that the client costs little CPU) with pre-serialised bodies. Each run measures
for ``--seconds`` after a warm-up; the figures reported are medians over ``--runs`` runs, with the
1-minute load average taken before each run (the machine's other load inflates latencies).

The default invocation measures both databases and writes benchmarks/results/bench_server.json
(keeping the file's ``before`` section, the figures of the code before the first optimisation, and its
``previous`` section, those of the code before the last one; run them with ``--as-before`` and
``--as-previous`` and PYTHONPATH on that code's checkout):

    python benchmarks/bench_server.py

    python benchmarks/bench_server.py --db sqlite --runs 3 --seconds 5   # one database
    PYTHONPATH=/old/src python benchmarks/bench_server.py --as-before    # measure a baseline checkout

Budgets are unlimited, so with the same 16 agents throughout, each agent's hour of submissions (which
every submission counts, for the budget check and the receipt) grows by a few hundred per run, to about
25 times the default hourly budget of 60 by the fifth run, and throughput declines from run to run.
``--fresh-agents`` gives every run new agents, so that runs are independent replicates.
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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ADMIN = "bench-admin-token-0123456789abcdef"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


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
    sent: list[int],
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
        sent.append(1)
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
    sent: list[int] = []
    await asyncio.gather(
        *(
            client_loop(port, reqs, stop_at, measure_from, lat[k], errors, sent)
            for k, reqs in enumerate(per_client)
        )
    )
    all_lat = np.array([x for lst in lat for x in lst])
    return {
        "scores_per_s": all_lat.size / seconds,
        "p50_ms": float(np.percentile(all_lat, 50) * 1e3),
        "p99_ms": float(np.percentile(all_lat, 99) * 1e3),
        "n": int(all_lat.size),
        "n_with_warmup": len(sent),
        "errors": len(errors),
    }


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants (Linux /proc): the
    server's own cost, which the machine's other load inflates far less than wall-clock figures."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = (Path("/proc") / entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(cpu.get(p, 0.0) for p in tree)


@contextmanager
def database(kind: str) -> Iterator[str | None]:
    """The ``--db-url`` of a fresh database of ``kind`` (None: the server's SQLite file); a PostgreSQL
    database is created for the run and dropped afterwards, so nothing is left behind."""
    if kind == "sqlite":
        yield None
        return
    import psycopg

    name = f"aar_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(args: argparse.Namespace, db_url: str | None) -> tuple[subprocess.Popen[bytes], int]:
    """``aar serve`` on a fresh data dir and a free port, answering /health."""
    from aar.client import Client

    data_dir = Path(tempfile.mkdtemp(prefix="aar-bench-"))
    port = free_port()
    env = {**os.environ, "AAR_ADMIN_TOKEN": ADMIN}
    cmd = [sys.executable, "-m", "aar.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--workers", str(args.workers), "--budget-per-hour", "-1", "--budget-total", "-1"]
    cmd += ["--ladder", args.ladder] + (["--db-url", db_url] if db_url else [])
    proc = subprocess.Popen(cmd, env=env)
    with Client(f"http://127.0.0.1:{port}", ADMIN, timeout=5) as admin:
        deadline = time.monotonic() + 120
        while True:
            try:
                admin.health()
                return proc, port
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)


def prepare(port: int, args: argparse.Namespace, run: int = 0) -> list[list[bytes]]:
    """Register the testbed (``run`` 0), then one new agent and artifact per client; each client's
    request bodies."""
    from aar.client import Client

    with Client(f"http://127.0.0.1:{port}", ADMIN) as admin:
        bundle = make_bundle(args.n_test)
        if run == 0:
            admin.register_testbed(bundle)
        ids = sorted(bundle["labels"])
        rng = np.random.default_rng(1 + run)
        per_client = []
        for k in range(args.clients):
            token = admin.create_agent(f"bench-{run}-{k}").token
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
    return per_client


def bench_db(kind: str, args: argparse.Namespace) -> dict:
    """All runs on one database; the medians and each run's figures and load."""
    with database(kind) as db_url:
        proc, port = start_server(args, db_url)
        try:
            per_client = prepare(port, args)
            runs = []
            for i in range(args.runs):
                if args.fresh_agents and i:
                    per_client = prepare(port, args, run=i)
                load = os.getloadavg()[0]
                cpu0 = tree_cpu_seconds(proc.pid)
                r = asyncio.run(drive(port, per_client, args.seconds, args.warmup))
                r["server_cpu_ms_per_score"] = (tree_cpu_seconds(proc.pid) - cpu0) * 1e3 / r["n_with_warmup"]
                r["load_1min_before"] = load
                runs.append(r)
                print(
                    f"{kind}: {r['scores_per_s']:.0f} scores/s  p50 {r['p50_ms']:.1f} ms  "
                    f"p99 {r['p99_ms']:.1f} ms  server CPU {r['server_cpu_ms_per_score']:.2f} ms/score  "
                    f"({r['n']} requests, {r['errors']} errors, load {load:.2f})"
                )
        finally:
            proc.terminate()
            proc.wait(30)
    keys = ("scores_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_score", "errors", "load_1min_before")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    print(
        f"{kind}: median over {args.runs} runs: {med['scores_per_s']:.0f} scores/s, "
        f"p50 {med['p50_ms']:.1f} ms, p99 {med['p99_ms']:.1f} ms, "
        f"server CPU {med['server_cpu_ms_per_score']:.2f} ms/score"
    )
    return {"db": "sqlite (WAL)" if kind == "sqlite" else "postgresql", "median": med, "runs": runs}


def ratios(after: dict, base: dict) -> dict:
    """Per database, the after/base ratios of throughput, p99 latency and server CPU per score."""
    out = {}
    for kind, fig in after["databases"].items():
        ref = base["databases"].get(kind)
        if ref:
            out[kind] = {
                k: fig["median"][k] / ref["median"][k]
                for k in ("scores_per_s", "p99_ms", "server_cpu_ms_per_score")
                if ref["median"].get(k) and fig["median"].get(k)
            }
    return out


def git_commit() -> str | None:
    """The checked-out commit (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def main() -> None:
    """Run the benchmark on each database and print (and save) the medians."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument(
        "--fresh-agents",
        action="store_true",
        help="new agents for every run (runs are independent replicates; by default the same agents "
        "carry on, so each agent's hour of submissions grows from run to run)",
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--ladder", choices=["paired", "fixed"], default="paired", help="Ladder rule")
    ap.add_argument("--as-before", action="store_true", help="Store the figures as the 'before' section")
    ap.add_argument(
        "--as-previous",
        action="store_true",
        help="Store the figures as the 'previous' section (the code of the optimisation round before)",
    )
    ap.add_argument("--commit", help="Commit of the code measured (default: this checkout's HEAD)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_server.json")
    args = ap.parse_args()

    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    import aar

    measured = {
        "commit": args.commit or git_commit(),
        "aar_source": str(Path(aar.__file__).parent),  # the code measured (PYTHONPATH may point elsewhere)
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "databases": {kind: bench_db(kind, args) for kind in kinds},
    }
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    section = "before" if args.as_before else "previous" if args.as_previous else "after"
    result = {
        "benchmark": "bench_server",
        "workers": args.workers,
        "clients": args.clients,
        "fresh_agents_per_run": args.fresh_agents,
        "n_test": args.n_test,
        "ladder": args.ladder,
        "runs_per_db": args.runs,
        "seconds_per_run": args.seconds,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "before": previous.get("before") if isinstance(previous.get("before"), dict) else None,
        "previous": previous.get("previous") if isinstance(previous.get("previous"), dict) else None,
        "after": previous.get("after") if isinstance(previous.get("after"), dict) else None,
    }
    old = result[section] or {"databases": {}}
    if set(kinds) != {"sqlite", "postgresql"}:  # one database measured: keep the other's figures
        measured["databases"] = {**old.get("databases", {}), **measured["databases"]}
    result[section] = measured
    for base in ("before", "previous"):
        if result[base] and result["after"]:
            result[f"after_over_{base}"] = ratios(result["after"], result[base])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

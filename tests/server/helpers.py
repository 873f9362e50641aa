"""Test helpers: synthetic ground-truth bundles and a uvicorn server running in a thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from aar.client import Client
from aar.server.app import create_app
from aar.server.config import Settings
from aar.server.vault import assign_halves, halves_key
from aar.w2s.vault import VaultBundle

ADMIN_TOKEN = "test-admin-token-0123456789"
REFERENCE_ACCURACY = {"weak": 0.65, "ceiling": 0.9, "vanilla": 0.72, "confident": 0.78}


def noisy_predictions(labels: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities whose thresholded value is right with probability ``acc``."""
    right = rng.random(labels.size) < acc
    conf = rng.uniform(0.55, 0.95, labels.size)
    p_label = np.where(right, conf, 1.0 - conf)
    return np.where(labels == 1, p_label, 1.0 - p_label)


def make_bundle(
    testbed_id: str | None = None, n: int = 200, seed: int = 0, n_seeds: int = 3, n_final: int | None = None
) -> VaultBundle:
    """A synthetic format-2 testbed: random labels on a test split of ``n`` ids and a small final split
    (default ``max(40, n // 4)`` ids), noisy reference runs per seed covering both."""
    rng = np.random.default_rng(seed)
    n_final = max(40, n // 4) if n_final is None else n_final
    ids = [f"t{seed}-{i:05d}" for i in range(n)]
    final_ids = [f"f{seed}-{i:05d}" for i in range(n_final)]
    labels = rng.integers(0, 2, n)
    final_labels = rng.integers(0, 2, n_final)
    all_ids, all_labels = ids + final_ids, np.concatenate([labels, final_labels])
    refs = {
        name: [
            dict(zip(all_ids, noisy_predictions(all_labels, acc, rng).tolist(), strict=True))
            for _ in range(n_seeds)
        ]
        for name, acc in REFERENCE_ACCURACY.items()
    }
    return VaultBundle(
        testbed_id=testbed_id or f"tb-{uuid.uuid4().hex[:8]}",
        description="synthetic testbed",
        labels=dict(zip(ids, labels.tolist(), strict=True)),
        final_labels=dict(zip(final_ids, final_labels.tolist(), strict=True)),
        references=refs,
    )


def halves_of(data_dir: Path, bundle: VaultBundle) -> dict[str, str]:
    """The halves the server with this data dir assigns to the bundle's test ids (tests only)."""
    return assign_halves(halves_key(data_dir), bundle.testbed_id, sorted(bundle.labels))


def labels_of(bundle: VaultBundle) -> dict[str, int]:
    """Ground truth of a bundle (tests only: the server never returns it)."""
    return dict(bundle.labels)


class ServerThread:
    """The real app under uvicorn on 127.0.0.1 (free port) or a Unix socket, in a daemon thread."""

    def __init__(self, settings: Settings, uds: Path | None = None) -> None:
        self.settings = settings
        app = create_app(settings)
        self.uds = uds
        if uds is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            config = uvicorn.Config(app, log_level="warning", lifespan="off")
        else:
            self.sock = None
            config = uvicorn.Config(app, uds=str(uds), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock] if self.sock else None}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str = ADMIN_TOKEN) -> Client:
        if self.uds is not None:
            return Client.over_unix_socket(self.uds, token)
        return Client(self.base_url, token)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def unique(prefix: str) -> str:
    """A unique short name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_process(
    data_dir: Path,
    port: int,
    db_url: str | None = None,
    workers: int = 1,
    budget_total: int = -1,
    budget_per_hour: int = -1,
) -> subprocess.Popen[bytes]:
    """``aar serve`` as a real subprocess in its own process group (so a test can kill -9 the server
    and all its workers at once), answering /health; the wait has a generous safety net."""
    env = {**os.environ, "AAR_ADMIN_TOKEN": ADMIN_TOKEN}
    cmd = [sys.executable, "-m", "aar.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--workers", str(workers), "--budget-per-hour", str(budget_per_hour)]
    cmd += ["--budget-total", str(budget_total)] + (["--db-url", db_url] if db_url else [])
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    with Client(f"http://127.0.0.1:{port}", ADMIN_TOKEN, timeout=5) as c:
        while True:
            try:
                c.health()
                return proc
            except (httpx.HTTPError, OSError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)

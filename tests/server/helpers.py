"""Test helpers: synthetic ground-truth bundles and a uvicorn server running in a thread."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import uvicorn

from aar.client import Client
from aar.server.app import create_app
from aar.server.config import Settings
from aar.w2s.vault import VaultBundle

ADMIN_TOKEN = "test-admin-token-0123456789"
REFERENCE_ACCURACY = {"weak": 0.65, "ceiling": 0.9, "vanilla": 0.72, "confident": 0.78}


def noisy_predictions(labels: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities whose thresholded value is right with probability ``acc``."""
    right = rng.random(labels.size) < acc
    conf = rng.uniform(0.55, 0.95, labels.size)
    p_label = np.where(right, conf, 1.0 - conf)
    return np.where(labels == 1, p_label, 1.0 - p_label)


def make_bundle(testbed_id: str | None = None, n: int = 200, seed: int = 0, n_seeds: int = 3) -> VaultBundle:
    """A synthetic testbed: random labels, random halves, noisy reference runs per seed."""
    rng = np.random.default_rng(seed)
    ids = [f"t{seed}-{i:05d}" for i in range(n)]
    labels = rng.integers(0, 2, n)
    halves = np.array(["public"] * (n // 2) + ["private"] * (n - n // 2))
    rng.shuffle(halves)
    refs = {
        name: [
            dict(zip(ids, noisy_predictions(labels, acc, rng).tolist(), strict=True)) for _ in range(n_seeds)
        ]
        for name, acc in REFERENCE_ACCURACY.items()
    }
    return VaultBundle(
        testbed_id=testbed_id or f"tb-{uuid.uuid4().hex[:8]}",
        description="synthetic testbed",
        labels=dict(zip(ids, labels.tolist(), strict=True)),
        halves=dict(zip(ids, halves.tolist(), strict=True)),
        references=refs,
    )


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

"""The ground-truth vault: test labels and halves of each registered testbed, under the data dir.

Bundles are stored as ``<data_dir>/vault/<testbed id>-<sha prefix>.json`` (directory mode 700, files
600) and are never served. Each server process keeps the arrays it scores against in memory
(:class:`TestbedArrays`), loaded once per testbed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aar.server.db import Database
from aar.server.errors import ApiError
from aar.server.models import Testbed
from aar.w2s.metrics import GapError, accuracy, pgr
from aar.w2s.vault import VaultBundle


@dataclass(frozen=True)
class TestbedArrays:
    """Everything needed to score one testbed, in canonical (sorted id) order."""

    testbed_id: str
    ids: list[str]
    pos: dict[str, int]
    labels: np.ndarray  # int8, 0/1
    public: np.ndarray  # bool mask of the public half
    weak: tuple[float, float]  # accuracy on (public, private)
    ceiling: tuple[float, float]
    references: dict[str, np.ndarray]  # name -> (n_seeds, n) probabilities

    def half_accuracy(self, probs: np.ndarray) -> tuple[float, float]:
        """Accuracy of ``probs`` on the public and on the private half."""
        return (
            accuracy(probs[self.public], self.labels[self.public]),
            accuracy(probs[~self.public], self.labels[~self.public]),
        )

    def half_pgr(self, acc_public: float, acc_private: float) -> tuple[float, float]:
        """PGR on each half against that half's fixed weak and ceiling baselines."""
        return (
            pgr(acc_public, self.weak[0], self.ceiling[0]),
            pgr(acc_private, self.weak[1], self.ceiling[1]),
        )


def vault_dir(data_dir: Path) -> Path:
    """The vault directory (created with mode 700)."""
    d = Path(data_dir) / "vault"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def bundle_sha256(bundle: VaultBundle) -> str:
    """Hash of the bundle's canonical JSON form."""
    return hashlib.sha256(bundle.model_dump_json().encode()).hexdigest()


def _bundle_path(data_dir: Path, testbed_id: str, sha: str) -> Path:
    return vault_dir(data_dir) / f"{testbed_id}-{sha[:16]}.json"


def build_arrays(bundle: VaultBundle) -> TestbedArrays:
    """Canonical arrays and per-half baselines (mean over seeds) of a bundle."""
    ids = sorted(bundle.labels)
    pos = {k: i for i, k in enumerate(ids)}
    labels = np.array([bundle.labels[k] for k in ids], dtype=np.int8)
    public = np.array([bundle.halves[k] == "public" for k in ids], dtype=bool)
    refs = {
        name: np.array([[run[k] for k in ids] for run in runs], dtype=np.float64)
        for name, runs in bundle.references.items()
    }
    for name, arr in refs.items():
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise ApiError(422, "invalid_bundle", f"reference '{name}' has probabilities outside [0, 1]")

    def mean_acc(name: str) -> tuple[float, float]:
        accs = [
            (accuracy(r[public], labels[public]), accuracy(r[~public], labels[~public])) for r in refs[name]
        ]
        return float(np.mean([a[0] for a in accs])), float(np.mean([a[1] for a in accs]))

    arrays = TestbedArrays(
        bundle.testbed_id, ids, pos, labels, public, mean_acc("weak"), mean_acc("ceiling"), refs
    )
    try:
        arrays.half_pgr(0.5, 0.5)
    except GapError as e:
        raise ApiError(422, "invalid_bundle", f"testbed {bundle.testbed_id}: {e}") from None
    return arrays


def register(db: Database, data_dir: Path, bundle: VaultBundle) -> tuple[Testbed, bool]:
    """Store a bundle in the vault and its public facts in the database, all or nothing.

    Returns (row, created). Registering the identical bundle again is a no-op (also when several
    requests race to register it); a different bundle under an existing id is refused with 409
    (testbeds are immutable once registered). The bundle is validated (and its arrays built) before
    anything is written; the vault file is moved into place only after the row is inserted, inside the
    same transaction, and removed again when that transaction fails, so no file is left without a row.
    """
    sha = bundle_sha256(bundle)
    existing = _existing(db, bundle.testbed_id, sha)
    if existing is not None:
        return existing, False
    arrays = build_arrays(bundle)
    path = _bundle_path(data_dir, bundle.testbed_id, sha)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{bundle.testbed_id}-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(bundle.model_dump_json())
            f.flush()
            os.fsync(f.fileno())
        row = Testbed(
            id=bundle.testbed_id,
            description=bundle.description,
            n_test=len(arrays.ids),
            n_public=int(arrays.public.sum()),
            n_private=int((~arrays.public).sum()),
            bundle_sha256=sha,
            weak_public=arrays.weak[0],
            weak_private=arrays.weak[1],
            ceiling_public=arrays.ceiling[0],
            ceiling_private=arrays.ceiling[1],
            created_at=time.time(),
        )
        try:
            with db.write() as s:
                if s.get(Testbed, bundle.testbed_id) is None:
                    s.add(row)
                    s.flush()  # the insert runs here: a refused row leaves no file behind
                    tmp.replace(path)
                    return row, True
        except IntegrityError:  # a concurrent request (another process) inserted it first
            pass
        except BaseException:
            if path.exists() and _existing(db, bundle.testbed_id, sha) is None:
                path.unlink(missing_ok=True)
            raise
        existing = _existing(db, bundle.testbed_id, sha)
        if existing is None:  # pragma: no cover - the conflicting row vanished: testbeds are never deleted
            raise ApiError(409, "testbed_exists", f"testbed {bundle.testbed_id} was registered concurrently")
        return existing, False
    finally:
        tmp.unlink(missing_ok=True)


def _existing(db: Database, testbed_id: str, sha: str) -> Testbed | None:
    """The registered row of ``testbed_id`` when it holds this bundle; 409 when it holds another."""
    with db.read() as s:
        existing = s.get(Testbed, testbed_id)
    if existing is not None and existing.bundle_sha256 != sha:
        raise ApiError(409, "testbed_exists", f"testbed {testbed_id} exists with other data")
    return existing


def register_bundle(data_dir: Path, bundle: VaultBundle, db_url: str | None = None) -> Testbed:
    """Register a bundle with the server whose data dir (and optionally database URL) is given."""
    from aar.server.db import migrate

    url = db_url or f"sqlite:///{Path(data_dir) / 'server.db'}"
    migrate(url)
    db = Database(url)
    try:
        return register(db, Path(data_dir), bundle)[0]
    finally:
        db.dispose()


class VaultCache:
    """Per-process cache of scoring arrays, loaded lazily from the vault."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        """Cache over the given database and data dir."""
        self.db, self.data_dir = db, Path(data_dir)
        self._arrays: dict[str, TestbedArrays] = {}
        self._lock = threading.Lock()

    def get(self, testbed_id: str) -> TestbedArrays:
        """Arrays of a registered testbed; 404 when it is unknown."""
        arrays = self._arrays.get(testbed_id)
        if arrays is not None:
            return arrays
        with self._lock:
            if testbed_id in self._arrays:
                return self._arrays[testbed_id]
            with self.db.read() as s:
                row = s.scalar(select(Testbed).where(Testbed.id == testbed_id))
            if row is None:
                raise ApiError(404, "unknown_testbed", f"no testbed with id {testbed_id!r}")
            bundle = VaultBundle.load(_bundle_path(self.data_dir, row.id, row.bundle_sha256))
            arrays = build_arrays(bundle)
            self._arrays[testbed_id] = arrays
            return arrays

"""The ground-truth vault: test and final labels of each registered testbed, under the data dir.

Bundles (:class:`aar.w2s.vault.VaultBundle`, format 2) are stored as
``<data_dir>/vault/<testbed id>-<sha prefix>.json`` (directory mode 700, files 600) and are never
served. Each server process keeps the arrays it scores against in memory (:class:`TestbedArrays`),
loaded once per testbed.

Halves. The server alone decides which test ids are public: the first half (``n // 2``) of the test
ids sorted by HMAC-SHA256(key, ``"<testbed id>/<example id>"``), where the key is 32 random bytes in
``<data_dir>/halves_key`` (mode 600), made at first start. Nothing an agent can read (the package,
the bundle format, the public view) lets it recompute the split, and the key never leaves the data
dir. Every worker process reads the same file (creation is race-safe: a fully written temp file is
hard-linked into place, so a second creator just reads the winner's key). Deleting the key changes
the halves of every registered testbed, whose stored baselines would then be stale: keep it with the
database.

The final split (``final_labels``) is held here too, with its own weak and ceiling baselines, but it
is never scored by ``POST /v1/submissions`` (whose ids must be exactly the test ids): only the admin
evaluate endpoint reads it, for audits and headline figures.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aar.server.artifacts import clean_locked_temps, locked_temp
from aar.server.db import Database
from aar.server.errors import ApiError
from aar.server.models import Testbed
from aar.textcheck import check_lines
from aar.w2s.metrics import GapError, accuracy, pgr
from aar.w2s.vault import VaultBundle

REGISTER_PREFIX = ".register-"  # vault temp files of registrations in progress

HALVES_KEY_FILE = "halves_key"


def halves_key(data_dir: Path) -> bytes:
    """The server's halves secret (32 bytes in ``<data_dir>/halves_key``, mode 600), made on first use.

    Race-safe across worker processes: the key is written to a private temp file and hard-linked into
    place; ``link`` fails when another process got there first, and then everyone reads that file.
    """
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / HALVES_KEY_FILE
    if not path.exists():
        tmp = d / f".{HALVES_KEY_FILE}.{os.getpid()}.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise RuntimeError(f"{path} must hold 32 bytes (the halves secret), found {len(key)}")
    return key


def public_mask(key: bytes, testbed_id: str, ids: Sequence[str]) -> np.ndarray:
    """Bool mask over ``ids``: True for the public half (the first ``len(ids) // 2`` of the ids sorted
    by HMAC-SHA256(key, ``"<testbed id>/<id>"``))."""
    digests = [hmac.new(key, f"{testbed_id}/{i}".encode(), hashlib.sha256).digest() for i in ids]
    order = sorted(range(len(ids)), key=lambda j: digests[j])
    mask = np.zeros(len(ids), dtype=bool)
    mask[order[: len(ids) // 2]] = True
    return mask


def assign_halves(key: bytes, testbed_id: str, ids: Sequence[str]) -> dict[str, str]:
    """``{id: "public" | "private"}`` as the server assigns them (for tests and operator tools)."""
    mask = public_mask(key, testbed_id, ids)
    return {i: "public" if m else "private" for i, m in zip(ids, mask, strict=True)}


@dataclass(frozen=True)
class TestbedArrays:
    """Everything needed to score one testbed, in canonical (sorted id) order.

    The test split (``ids``, ``labels``, ``references``) is what submissions are scored on; the final
    split (``final_*``, possibly empty) is only read by the admin evaluate endpoint.
    """

    testbed_id: str
    ids: list[str]
    pos: dict[str, int]
    labels: np.ndarray  # int8, 0/1
    public: np.ndarray  # bool mask of the public half
    weak: tuple[float, float]  # accuracy on (public, private)
    ceiling: tuple[float, float]
    references: dict[str, np.ndarray]  # name -> (n_seeds, n) probabilities
    final_ids: list[str] = field(default_factory=list)
    final_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    final_references: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_seeds, n_final)
    weak_final: float | None = None
    ceiling_final: float | None = None
    teacher_on_test: bool = False

    @functools.cached_property
    def ids_are_lines(self) -> bool:
        """Whether the test ids pass the text check of a submission's ids (:func:`check_lines`), so
        that a submission sending exactly these ids needs no check of its own (computed once)."""
        try:
            check_lines(self.ids)
        except ValueError:
            return False
        return True

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


def build_arrays(bundle: VaultBundle, key: bytes) -> TestbedArrays:
    """Canonical arrays and per-half baselines (mean over seeds) of a bundle; ``key`` is the halves
    secret (:func:`halves_key`)."""
    ids = sorted(bundle.labels)
    pos = {k: i for i, k in enumerate(ids)}
    labels = np.array([bundle.labels[k] for k in ids], dtype=np.int8)
    public = public_mask(key, bundle.testbed_id, ids)
    final_ids = sorted(bundle.final_labels)
    final_labels = np.array([bundle.final_labels[k] for k in final_ids], dtype=np.int8)
    refs, final_refs = {}, {}
    for name, runs in bundle.references.items():
        if not runs:
            raise ApiError(422, "invalid_bundle", f"reference '{name}' has no runs")
        refs[name] = np.array([[run[k] for k in ids] for run in runs], dtype=np.float64)
        final_refs[name] = np.array([[run[k] for k in final_ids] for run in runs], dtype=np.float64)
        for arr in (refs[name], final_refs[name]):
            if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1):
                raise ApiError(422, "invalid_bundle", f"reference '{name}' has probabilities outside [0, 1]")

    def mean_acc(name: str) -> tuple[float, float]:
        accs = [
            (accuracy(r[public], labels[public]), accuracy(r[~public], labels[~public])) for r in refs[name]
        ]
        return float(np.mean([a[0] for a in accs])), float(np.mean([a[1] for a in accs]))

    def final_acc(name: str) -> float | None:
        if not final_ids:
            return None
        return float(np.mean([accuracy(r, final_labels) for r in final_refs[name]]))

    arrays = TestbedArrays(
        bundle.testbed_id,
        ids,
        pos,
        labels,
        public,
        mean_acc("weak"),
        mean_acc("ceiling"),
        refs,
        final_ids,
        final_labels,
        final_refs,
        final_acc("weak"),
        final_acc("ceiling"),
        bundle.teacher_on_test,
    )
    try:
        arrays.half_pgr(0.5, 0.5)
        if final_ids and arrays.weak_final is not None and arrays.ceiling_final is not None:
            pgr(0.5, arrays.weak_final, arrays.ceiling_final)
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
    arrays = build_arrays(bundle, halves_key(data_dir))
    path = _bundle_path(data_dir, bundle.testbed_id, sha)
    fd, tmp_name = locked_temp(path.parent, REGISTER_PREFIX)  # held until written: see clean_registrations
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
            n_final=len(arrays.final_ids),
            weak_final=arrays.weak_final,
            ceiling_final=arrays.ceiling_final,
            teacher_on_test=arrays.teacher_on_test,
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


def clean_registrations(data_dir: Path) -> int:
    """Remove vault temp files of registrations whose process was killed mid-write; returns how many."""
    return clean_locked_temps(vault_dir(data_dir), REGISTER_PREFIX)


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


class CorrectCache:
    """Per-process LRU of public-half correctness vectors by submission id, so the paired Ladder does
    not read the best submission's predictions back from the database on every submission.

    Safe across worker processes: a submission's predictions never change, and the Ladder row (read
    in the submission's transaction) says which submission is the best; a miss just reads the blob.
    Only committed submissions are put in (SQLite may reuse the id of a rolled-back insert).
    """

    def __init__(self, size: int = 4096) -> None:
        """An empty cache holding at most ``size`` vectors."""
        self.size = size
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, submission_id: int) -> np.ndarray | None:
        """The cached vector of a submission, or None."""
        with self._lock:
            vec = self._items.get(submission_id)
            if vec is not None:
                self._items.move_to_end(submission_id)
            return vec

    def put(self, submission_id: int, correct: np.ndarray) -> None:
        """Remember a committed submission's public correctness."""
        with self._lock:
            self._items[submission_id] = correct
            self._items.move_to_end(submission_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class VaultCache:
    """Per-process cache of scoring arrays, loaded lazily from the vault."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        """Cache over the given database and data dir."""
        self.db, self.data_dir = db, Path(data_dir)
        self.key = halves_key(self.data_dir)
        self.best_correct = CorrectCache()  # the paired Ladder's public correctness of best submissions
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
            path = _bundle_path(self.data_dir, row.id, row.bundle_sha256)
            try:
                bundle = VaultBundle.load(path)
            except (OSError, ValueError) as e:  # another data dir's database, or an old bundle format
                raise ApiError(
                    503,
                    "vault_unavailable",
                    f"the ground truth of testbed {testbed_id!r} is missing or unreadable in this server's "
                    "data dir (is the database shared with another data dir, or the bundle from an older "
                    "format?); re-register the testbed",
                    {"reason": type(e).__name__},
                ) from None
            arrays = build_arrays(bundle, self.key)
            self._arrays[testbed_id] = arrays
            return arrays

"""The operator's secret behind a testbed's test and final splits: the draw salt.

A salt of :data:`SALT_BYTES` random bytes (:func:`secrets.token_bytes`) is made when a testbed is
built (built-in) or imported, and stored beside it in ``secret/salt`` (folder mode 700, file mode
600). It keys everything an agent must not be able to recompute with the installed package: which
problems the test and final splits draw (built-in testbeds), which examples of an imported test file
are held back as the final split, and the ids of both splits (an HMAC, so ids reveal nothing). It is
never exported: public views and vault bundles carry neither the salt nor anything derived from it
beyond the ids.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from aar.w2s.data import Dataset, Example

SALT_BYTES = 32
SECRET_DIR = "secret"
SALT_FILE = "salt"


def new_salt() -> bytes:
    """A fresh random salt."""
    return secrets.token_bytes(SALT_BYTES)


def keyed(salt: bytes, what: str) -> bytes:
    """HMAC-SHA256 of ``what`` under ``salt`` (the one derivation every secret choice uses)."""
    return hmac.new(salt, what.encode(), hashlib.sha256).digest()


def drawn_id(name: str, salt: bytes, split: str, index: str | int) -> str:
    """Id of an example of a secret split: ``<name>-`` and 16 hex digits of an HMAC of (split, index)."""
    return f"{name}-{keyed(salt, f'id/{split}/{index}').hex()[:16]}"


def write_secret(folder: Path, data: bytes, name: str = SALT_FILE) -> Path:
    """Write ``data`` to ``folder/secret/name``: folder mode 700, file mode 600 from creation on."""
    d = Path(folder) / SECRET_DIR
    d.mkdir(mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    f = d / name
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(f, 0o600)
    return f


def read_salt(folder: Path) -> bytes | None:
    """The salt stored with the testbed in ``folder`` (None if it has none)."""
    f = Path(folder) / SECRET_DIR / SALT_FILE
    if not f.exists():
        return None
    salt = f.read_bytes()
    if len(salt) < 16:
        raise ValueError(f"{f}: a salt must have at least 16 bytes")
    return salt


def carve_final(data: Dataset, salt: bytes, share: float = 1 / 3) -> Dataset:
    """Hold back about ``share`` of ``data``'s test split as its final split, chosen under ``salt``.

    Whole groups (examples sharing a ``group``, e.g. a consistency id) go to one side, taken in the
    order of an HMAC of the group under ``salt`` until ``share`` of the test examples are held back.
    Test and final examples are renamed to :func:`drawn_id` ids (the original id is kept in
    ``meta["source_id"]``, which never leaves the operator side), in the test file's order. A test
    split of fewer than 3 examples is left whole.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"final share must be in [0, 1), got {share}")
    test = data.splits["test"]
    want = round(share * len(test)) if len(test) >= 3 else 0
    by_group: dict[str, list[Example]] = {}
    for e in test:
        by_group.setdefault(e.group if e.group is not None else f"id:{e.id}", []).append(e)
    held: set[str] = set()
    for key in sorted(by_group, key=lambda k: keyed(salt, f"final/{k}")):
        if len(held) >= want:
            break
        held.update(e.id for e in by_group[key])
    if len(held) >= len(test) - 1:  # one huge group: keep the test split usable
        held = set()

    def renamed(e: Example, split: str) -> Example:
        meta = {**e.meta, "source_id": e.id}
        return Example(drawn_id(data.name, salt, split, e.id), e.prompt, e.options, e.label, e.group, meta)

    splits = dict(data.splits)
    splits["test"] = [renamed(e, "test") for e in test if e.id not in held]
    splits["final"] = [renamed(e, "final") for e in test if e.id in held]
    return Dataset(data.name, splits)

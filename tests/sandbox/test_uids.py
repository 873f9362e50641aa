"""Sandbox uids are unique per running campaign, and a dead campaign's block is reused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from aar.sandbox.uids import BLOCK_SIZE, UID_BASE, allocate_uid_block


def _range(block) -> set[int]:
    return {block.uid(i) for i in range(block.size)}


def test_two_campaigns_get_disjoint_uids(tmp_path):
    a, b = allocate_uid_block(tmp_path), allocate_uid_block(tmp_path)
    assert not _range(a) & _range(b)
    assert min(_range(a) | _range(b)) >= UID_BASE and a.uid(0) != b.uid(0)
    with pytest.raises(ValueError):
        a.uid(BLOCK_SIZE)
    a.release()
    c = allocate_uid_block(tmp_path)  # a released block is reused
    assert c.uid(0) == a.uid(0) and not _range(c) & _range(b)
    b.release()
    c.release()


def test_a_dead_holders_block_is_reused(tmp_path):
    code = (
        "import sys, time; from aar.sandbox.uids import allocate_uid_block; "
        "b = allocate_uid_block(sys.argv[1]); print(b.uid(0), flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        held = int(holder.stdout.readline())
        mine = allocate_uid_block(tmp_path)
        assert mine.uid(0) != held  # the other campaign's block is taken while it lives
        holder.send_signal(signal.SIGKILL)  # ... and freed by the kernel when it dies, however
        holder.wait(10)
        again = allocate_uid_block(tmp_path)
        assert again.uid(0) == held
        mine.release()
        again.release()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.stdout.close()


def test_lock_directory_must_be_private(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(PermissionError):
        allocate_uid_block(shared)

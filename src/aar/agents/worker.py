"""Moved to :mod:`aar.w2s.worker` (the same worker serves agents' experiments, ``aar baseline`` and
audits); this name stays so that ``python -m aar.agents.worker REQ`` keeps working."""

from __future__ import annotations

import sys

from aar.w2s.worker import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

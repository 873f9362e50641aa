"""Operations shared by the admin API and the ``aar server`` commands."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from sqlalchemy import select

from aar.server.auth import forget_tokens, new_token, token_hash
from aar.server.db import Database
from aar.server.errors import ApiError
from aar.server.models import Agent

# Names an agent may not take: they name the server's own roles, audit actors and the baselines of the
# leaderboards, so an agent under one of them could pass its posts or scores off as theirs.
RESERVED_NAMES = frozenset(
    {
        "admin", "administrator", "root", "system", "server", "aar", "anonymous", "anon", "baseline",
        "baselines", "best_baseline", "weak", "ceiling", "reference", "operator", "moderator", "staff",
        "official", "null", "none", "nobody", "unknown", "everyone", "invalid",
    }
)  # fmt: skip
_SEPARATORS = re.compile(r"[-_.]+")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # as schemas.Name: the API's AgentCreate checks it too


def reserved_name(name: str) -> bool:
    """True when ``name`` is a reserved name, compared case-insensitively and ignoring separators and
    trailing digits ("Admin", "ad-min", "root_1", "SYSTEM." are all reserved)."""
    folded = name.casefold()
    bare = _SEPARATORS.sub("", folded).rstrip("0123456789")
    return folded in RESERVED_NAMES or bare in {_SEPARATORS.sub("", r) for r in RESERVED_NAMES}


def create_agent(
    db: Database, name: str, budget_per_hour: int | None = None, budget_total: int | None = None
) -> tuple[Agent, str]:
    """Create an agent; returns the row and its token (which is stored only as a hash).

    Reserved names (:func:`reserved_name`) are refused with 422; an existing name (any case) with 409.
    """
    if not NAME_PATTERN.match(name):
        raise ApiError(422, "invalid_name", "agent names are 1-64 letters, digits, '_', '.' or '-'")
    if reserved_name(name):
        raise ApiError(422, "reserved_name", f"the name {name!r} is reserved; choose another")
    token = new_token()
    with db.write() as s:
        if s.scalar(select(Agent.id).where(Agent.name == name)) is not None:
            raise ApiError(409, "agent_exists", f"an agent named {name!r} exists")
        agent = Agent(
            name=name,
            token_sha256=token_hash(token),
            created_at=time.time(),
            budget_per_hour=budget_per_hour,
            budget_total=budget_total,
            n_submissions=0,
        )
        s.add(agent)
        s.flush()
    return agent, token


def revoke_agent(db: Database, name: str) -> Agent:
    """Revoke an agent's token (idempotent)."""
    with db.write() as s:
        agent = s.scalar(select(Agent).where(Agent.name == name))
        if agent is None:
            raise ApiError(404, "unknown_agent", f"no agent named {name!r}")
        if agent.revoked_at is None:
            agent.revoked_at = time.time()
    forget_tokens()
    return agent


def admin_token(data_dir: Path, given: str | None) -> tuple[str, bool]:
    """The admin token: ``given``, else the one in ``<data_dir>/admin_token``, else a new one written
    there with mode 600. Returns (token, newly_generated)."""
    if given:
        return given, False
    path = Path(data_dir) / "admin_token"
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "aar_admin_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True

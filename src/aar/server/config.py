"""Server settings: a typed config object, readable from ``AAR_SERVER_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

ENV_PREFIX = "AAR_SERVER_"
MIN_ADMIN_TOKEN = 16


def default_data_dir() -> Path:
    """``$AAR_HOME/server``, with ``AAR_HOME`` defaulting to ``~/.cache/aar``."""
    home = os.environ.get("AAR_HOME") or str(Path.home() / ".cache" / "aar")
    return Path(home) / "server"


class Settings(BaseModel):
    """Everything the server needs to run; printed (minus secrets) at start-up."""

    data_dir: Path = Field(default_factory=default_data_dir)
    db_url: str | None = None  # default: sqlite file in data_dir
    admin_token: str
    budget_per_hour: int | None = 60  # per agent; None = unlimited
    budget_total: int | None = 1000  # per agent; None = unlimited
    # Ladder rule (aar.server.scoring): "paired" (parameter-free, paired test against the agent's best)
    # or "fixed" (fixed margin).
    ladder: Literal["paired", "fixed"] = "paired"
    # Margin of the fixed Ladder in public accuracy; None = 1/sqrt(n_public) of each testbed.
    ladder_margin: float | None = Field(default=None, gt=0.0, lt=1.0)
    max_json_bytes: int = 8 * 1024 * 1024
    max_artifact_bytes: int = 20 * 1024 * 1024
    auto_migrate: bool = True

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, v: str) -> str:
        if len(v) < MIN_ADMIN_TOKEN:
            raise ValueError(
                f"the admin token must be at least {MIN_ADMIN_TOKEN} characters long (this one has {len(v)})"
            )
        if any(c.isspace() or not c.isprintable() for c in v):
            raise ValueError("the admin token must not contain spaces or control characters")
        return v

    def database_url(self) -> str:
        """The SQLAlchemy URL: ``db_url`` or a SQLite file in the data dir."""
        return self.db_url or f"sqlite:///{self.data_dir / 'server.db'}"

    def public_dict(self) -> dict:
        """Settings without the admin token (for logs and result files)."""
        d = self.model_dump(mode="json", exclude={"admin_token"})
        if self.db_url and "@" in self.db_url:
            d["db_url"] = self.db_url.split("://")[0] + "://***@" + self.db_url.split("@", 1)[1]
        return d

    def to_env(self) -> dict[str, str]:
        """Environment variables from which :func:`settings_from_env` rebuilds these settings."""
        env = {}
        for key, value in self.model_dump(mode="json").items():
            env[ENV_PREFIX + key.upper()] = "" if value is None else str(value)
        return env


def settings_problem(error: ValidationError) -> str:
    """One readable line per invalid setting, never echoing the values (the admin token is secret)."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors(include_url=False, include_input=False)
    )


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``AAR_SERVER_*`` variables (empty string means None)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in environ:
            raw = environ[key]
            values[name] = None if raw == "" else raw
    return Settings.model_validate(values)

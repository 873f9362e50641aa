"""Server settings: a typed config object, readable from ``AAR_SERVER_*`` environment variables.

:class:`Settings` built in code (``aar serve``'s options, tests) takes only the values it is given;
:func:`settings_from_env` is the one reader of the environment (pydantic-settings: ``AAR_SERVER_<FIELD>``,
an empty value meaning None), used by the server process that ``aar serve`` starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "AAR_SERVER_"
MIN_ADMIN_TOKEN = 16


def default_data_dir() -> Path:
    """``$AAR_HOME/server``, with ``AAR_HOME`` defaulting to ``~/.cache/aar``."""
    home = os.environ.get("AAR_HOME") or str(Path.home() / ".cache" / "aar")
    return Path(home) / "server"


class Settings(BaseSettings):
    """Everything the server needs to run."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_parse_none_str="")

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: settings built in code never pick up the process environment."""
        return (init_settings,)

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


class _FromEnvironment(Settings):
    """The settings the ``AAR_SERVER_*`` variables give (and nothing else)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment only."""
        return (env_settings,)


def settings_from_env() -> Settings:
    """Build :class:`Settings` from the ``AAR_SERVER_*`` variables (an empty value means None)."""
    from_env = _FromEnvironment()  # type: ignore[call-arg]  # its values come from the environment
    return Settings.model_validate(from_env.model_dump())

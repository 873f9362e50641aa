"""The researchers' notes (``state.json`` in the workspace): what a killed researcher resumes from.

The offline researcher and the control researchers keep their notes as validated dataclasses
(pydantic) with a format ``version``. Notes written before the field existed are version 1; notes of
another version, or malformed ones, are refused with a clear :class:`NotesError` rather than half
understood (the campaign then shows the error in the agent's log).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

NOTES_VERSION = 1

T = TypeVar("T")


class NotesError(ValueError):
    """A researcher's ``state.json`` is not notes this version of aar can resume from."""


def validate_notes(raw: Any, cls: type[T], path: Path) -> T:
    """``raw`` (the parsed ``state.json`` at ``path``) as a ``cls``, after checking its version."""
    version = raw.get("version", 1) if isinstance(raw, dict) else None
    if version != NOTES_VERSION:
        raise NotesError(f"{path} has notes version {version!r}; this version of aar reads {NOTES_VERSION}")
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as e:
        raise NotesError(f"{path} is not valid researcher notes: {e}") from None

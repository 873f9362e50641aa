"""The one rule for untrusted text in request bodies: no control characters, valid UTF-8.

Text that agents send (forum posts, submission descriptions, example ids) or that a bundle carries
(testbed descriptions, example ids) is stored and shown to other agents and to people. Control
characters in it are never needed and do harm: a NUL is refused by PostgreSQL but stored by SQLite,
terminal escapes rewrite what an operator sees, and ``\\r`` hides text in logs. So every text field
of every request model uses one of these annotated types:

* :data:`Line`: single-line text, no character of Unicode category Cc at all;
* :data:`Text`: multi-line text, where ``\\n`` and ``\\t`` are the only control characters allowed;
* :data:`Lines`: a list of :data:`Line` checked in one pass (long id lists on the scoring hot path).

Lone surrogates (which do not encode as UTF-8) are refused by all three. Only the standard library
and pydantic are imported here, so the client and the bundle format can use it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_LINE_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"


def _check(v: str, bad: re.Pattern[str], what: str) -> str:
    hit = bad.search(v)
    if hit is not None:
        raise ValueError(f"control character U+{ord(hit.group()):04X} is not allowed in {what}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid UTF-8 (no lone surrogates)") from None
    return v


def check_line(v: str) -> str:
    """``v`` unchanged when it is single-line text without control characters; ValueError otherwise."""
    return _check(v, _LINE_BAD, "single-line text")


def check_text(v: str) -> str:
    """``v`` unchanged when its only control characters are newlines and tabs; ValueError otherwise."""
    return _check(v, _TEXT_BAD, "text (only \\n and \\t are allowed)")


def check_lines(v: list[str]) -> list[str]:
    """``v`` unchanged when no item holds a control character (one regex pass over all items)."""
    if v:
        check_line("".join(v))
    return v


Line = Annotated[str, AfterValidator(check_line), Field(json_schema_extra={"pattern": LINE_PATTERN})]
Text = Annotated[str, AfterValidator(check_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
Lines = Annotated[
    list[str],
    AfterValidator(check_lines),
    Field(json_schema_extra={"items": {"type": "string", "pattern": LINE_PATTERN}}),
]

"""Forum Markdown rendered safely for the dashboard.

Bodies are written by agents, who are adversaries: raw HTML is off (``<script>`` comes out as text),
images are off (no request to another site, nothing for the page's policy to block), and a link
keeps its target only for ``http``, ``https``, ``mailto`` and relative URLs; any other scheme
(``javascript:``, ``data:``, ``vbscript:``, ...) leaves the text unlinked. Links open with
``rel="nofollow noopener noreferrer"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import OptionsDict

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
ALLOWED_SCHEMES = {"http", "https", "mailto"}


def link_allowed(url: str) -> bool:
    """True for http(s), mailto and relative URLs (after markdown-it's normalisation)."""
    cleaned = "".join(c for c in url if c.isprintable() and not c.isspace())
    match = _SCHEME.match(cleaned)
    if match is None:
        return ":" not in cleaned.split("/", 1)[0] and not cleaned.startswith("//")
    return match.group(1).lower() in ALLOWED_SCHEMES


class _SafeMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        """markdown-it's own check, and only the allowed schemes."""
        return link_allowed(url) and super().validateLink(url)


def _renderer() -> MarkdownIt:
    md = _SafeMarkdown("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["image", "html_block", "html_inline"])

    def link_open(
        self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict[str, Any]
    ) -> str:
        """Every link: nofollow, no opener, no referrer."""
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        return self.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


_MD = _renderer()


def render_markdown(text: str) -> str:
    """Safe HTML of an untrusted Markdown body (escaped text, vetted links, no images, no raw HTML)."""
    return cast(str, _MD.render(text))

"""Issue text to safe HTML: Markdown with raw HTML disabled, long logs folded, then sanitized.

Issue bodies are written by strangers. Two independent layers keep them inert:
markdown-it renders with ``html=False`` (tags in the text come out as text) and rejects
``javascript:``-style links; nh3 (the Rust ``ammonia`` sanitizer) then allows only a short
list of tags, attributes and URL schemes. Images become plain links, so an issue cannot make
the annotator's browser fetch third-party URLs (the app's CSP forbids it as well).
"""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

FOLD_LINES = 15  # code blocks longer than this are folded behind a summary line

_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "details", "em", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "li", "ol", "p", "pre", "s", "span", "strong", "summary", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRS = {"a": {"href", "title"}, "code": {"class"}, "span": {"class"}, "details": {"class"},
          "pre": {"class"}}
_SCHEMES = {"http", "https", "mailto"}


def _fence(self, tokens, idx, options, env) -> str:  # noqa: ARG001 - markdown-it renderer signature
    token = tokens[idx]
    lang = (token.info or "").strip().split(" ")[0]
    code = token.content
    cls = f' class="language-{html.escape(lang)}"' if lang else ""
    pre = f"<pre><code{cls}>{html.escape(code)}</code></pre>"
    lines = code.count("\n") + (0 if code.endswith("\n") else 1)
    if lines > FOLD_LINES:
        first = html.escape(code.strip().splitlines()[-1][:120]) if code.strip() else ""
        return (f'<details class="log"><summary>{lines} lines{(" " + html.escape(lang)) if lang else ""}'
                f' — last: <code>{first}</code></summary>{pre}</details>\n')
    return pre + "\n"


def _image(self, tokens, idx, options, env) -> str:  # noqa: ARG001
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = token.content or "image"
    return f'<a href="{html.escape(str(src))}">[image: {html.escape(alt)}]</a>'


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _fence)
    md.add_render_rule("image", _image)
    return md


def sanitize(fragment: str) -> str:
    return nh3.clean(fragment, tags=_TAGS, attributes=_ATTRS, url_schemes=_SCHEMES,
                     link_rel="noopener noreferrer nofollow", strip_comments=True)


def render_markdown(text: str | None) -> str:
    """Safe HTML for an issue or comment body."""
    if not text:
        return ""
    return sanitize(_md().render(text))

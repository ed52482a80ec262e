"""Text preparation for the issue-kind classifier: template prefixes out, template headings kept.

Only an issue's title and body are read here; its maintainers' labels are the gold standard and
never reach the features (:func:`maintainer_kind` reads them for training and evaluation only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bugatlas.files import load_yaml

TEXT_CONFIG = Path(__file__).with_name("text.yaml")
BODY_CHARS = 4000  # the head of the body carries the template and the report; logs follow
_HEADING = re.compile(r"^\s{0,3}(?:#{1,6}\s*(.+?)\s*#*\s*$|\*\*([^*\n]{3,80})\*\*\s*:?\s*$)", re.M)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_URL = re.compile(r"https?://\S+")


@lru_cache(maxsize=4)
def text_config(path: str | None = None) -> dict[str, Any]:
    return load_yaml(Path(path or TEXT_CONFIG).read_text(encoding="utf-8"))


@lru_cache(maxsize=4)
def _prefix_re(path: str | None = None) -> re.Pattern[str]:
    alts = "|".join(f"(?:{p})" for p in text_config(path)["title_prefixes"])
    return re.compile(rf"^\s*(?:(?:{alts})\s*)+", re.IGNORECASE)


def strip_template_prefix(title: str | None) -> str:
    """``"[Bug]: vLLM crashes"`` -> ``"vLLM crashes"``; ``"Bug: x"``, ``"[Misc] x"``, ``"🐛 x"`` too.

    A title that is nothing but a prefix becomes empty: keeping it would leak the template."""
    return _prefix_re().sub("", (title or "").strip()).strip()


def body_headings(body: str | None) -> list[str]:
    """Section headings of the body (``### 🐛 Describe the bug`` -> ``describe the bug``).

    GitHub issue forms leave their section headings in the body; they are the reporter's own
    text (the form they chose), not a maintainer's judgment, so they are legitimate features."""
    out = []
    for m in _HEADING.finditer(_COMMENT.sub("", body or "")):
        h = (m.group(1) or m.group(2) or "").lower()
        h = re.sub(r"[^\w\s]", " ", h, flags=re.UNICODE)
        h = re.sub(r"\s+", " ", h).strip()
        if h:
            out.append(h)
    return out


def heading_tokens(body: str | None) -> str:
    """Headings as one token each (``H_describe_the_bug``), for a bag-of-headings vectorizer."""
    return " ".join("H_" + h.replace(" ", "_")[:48] for h in body_headings(body))


def clean_body(body: str | None, limit: int = BODY_CHARS) -> str:
    """The body's prose: HTML comments (template instructions) and URLs out, code fences shortened."""
    b = _COMMENT.sub(" ", body or "")
    b = _URL.sub(" URL ", b)
    b = _FENCE.sub(lambda m: " CODEBLOCK " + m.group(0)[3:400] + " ", b)
    return b[:limit]


@dataclass(frozen=True)
class Prepared:
    title: str
    body: str
    headings: str
    raw_body: str


def prepare(title: str | None, body: str | None, *, strip: bool = True) -> Prepared:
    t = strip_template_prefix(title) if strip else (title or "")
    return Prepared(title=t, body=clean_body(body), headings=heading_tokens(body), raw_body=(body or "")[:BODY_CHARS])


def maintainer_kinds(labels: list[str] | None, config: dict[str, Any] | None = None) -> set[str]:
    """Every kind the maintainers' labels give (the gold standard's raw material)."""
    table = {k.lower(): v for k, v in (config or text_config())["maintainer_kinds"].items()}
    return {table[l.lower()] for l in labels or [] if l.lower() in table}


def maintainer_kind(labels: list[str] | None, config: dict[str, Any] | None = None) -> str | None:
    """The kind the maintainers' labels give (gold standard); None if none or conflicting."""
    kinds = maintainer_kinds(labels, config)
    return kinds.pop() if len(kinds) == 1 else None

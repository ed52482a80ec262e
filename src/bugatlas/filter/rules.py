"""Stage 1 of the filter: a study's collection rules (keywords, maintainers' labels, states) as data.

A rules file (``studies/<name>.yaml`` in the package, or any YAML path) says which issues a study
takes as candidates, e.g. Yu et al.'s 14 failure keywords or Liu et al.'s closed ``bug`` issues.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml

STUDIES_DIR = Path(__file__).with_name("studies")


@dataclass
class RuleResult:
    passed: bool
    keywords: list[str] = field(default_factory=list)  # the terms that matched (evidence)
    reasons: list[str] = field(default_factory=list)  # why it failed, one phrase each


@dataclass
class FilterRules:
    name: str
    terms: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=lambda: ["title", "body"])
    keywords_required: bool = False
    require_any: list[str] = field(default_factory=list)
    require_all: list[str] = field(default_factory=list)
    exclude_any: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    description: str = ""
    source: str = ""

    @cached_property
    def key(self) -> str:
        """``name@digest`` of what the rules decide by: a rules file edited under the same name
        (a copy of ``default.yaml`` keeps ``name: default``) is other rules, judged again."""
        what = [self.terms, self.fields, self.keywords_required, self.require_any, self.require_all,
                self.exclude_any, self.states]  # fmt: skip
        return f"{self.name}@{hashlib.sha256(json.dumps(what).encode()).hexdigest()[:10]}"

    @cached_property
    def _keyword_re(self) -> re.Pattern[str] | None:
        if not self.terms:
            return None
        # A word starting with a term matches ("errors", "failed"), as a search engine would.
        return re.compile(r"\b(" + "|".join(re.escape(t) for t in self.terms) + r")\w*", re.IGNORECASE)

    def keywords_in(self, title: str | None, body: str | None) -> list[str]:
        if self._keyword_re is None:
            return []
        text = "\n".join(x or "" for f, x in (("title", title), ("body", body)) if f in self.fields)
        found: list[str] = []
        for m in self._keyword_re.finditer(text):
            term = m.group(1).lower()
            if term not in found:
                found.append(term)
        return found

    def check(self, title: str | None, body: str | None, labels: list[str] | None = None,
              state: str | None = None) -> RuleResult:
        labels_l = {l.lower() for l in labels or []}
        kws = self.keywords_in(title, body)
        reasons = []
        if self.keywords_required and self.terms and not kws:
            reasons.append("no failure keyword")
        if self.require_any and not labels_l & {l.lower() for l in self.require_any}:
            reasons.append(f"none of the labels {', '.join(self.require_any)}")
        missing = [l for l in self.require_all if l.lower() not in labels_l]
        if missing:
            reasons.append(f"missing label(s) {', '.join(missing)}")
        excluded = [l for l in self.exclude_any if l.lower() in labels_l]
        if excluded:
            reasons.append(f"excluded label {excluded[0]}")
        if self.states and (state or "").lower() not in {s.lower() for s in self.states}:
            reasons.append(f"state {state or 'unknown'} not in {', '.join(self.states)}")
        return RuleResult(not reasons, kws, reasons)


_KEYS = {"name", "description", "keywords", "labels", "states"}
_KEYWORD_KEYS = {"terms", "fields", "required"}
_LABEL_KEYS = {"require_any", "require_all", "exclude_any"}


def _list(data: dict[str, Any], key: str, where: str) -> list[str]:
    v = data.get(key) or []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BadInputError(f"{where}: '{key}' must be a list of strings")
    return list(v)


def load_rules(name_or_path: str | Path | None = None) -> FilterRules:
    """Rules by built-in study name (default, yu2026, liu2025) or YAML path."""
    s = str(name_or_path or "default")
    p = Path(s)
    if not (p.suffix in (".yaml", ".yml") or "/" in s):
        p = STUDIES_DIR / f"{s}.yaml"
        if not p.is_file():
            known = ", ".join(sorted(f.stem for f in STUDIES_DIR.glob("*.yaml")))
            raise BadInputError(f"unknown filter rules {s!r} (built-in: {known}; or give a YAML path)")
    if not p.is_file():
        raise BadInputError(f"filter rules file not found: {p}")
    try:
        data = load_yaml(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise BadInputError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"{p}: cannot read the rules file ({e})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{p}: expected a mapping with keywords/labels/states")
    kw = data.get("keywords") or {}
    lab = data.get("labels") or {}
    if not isinstance(kw, dict) or not isinstance(lab, dict):
        raise BadInputError(f"{p}: 'keywords' and 'labels' must be mappings")
    # a misspelt key ("state:", "require:") would otherwise be ignored: the rules would take more
    for section, given, known in ((None, data, _KEYS), ("keywords", kw, _KEYWORD_KEYS), ("labels", lab, _LABEL_KEYS)):
        unknown = sorted(set(map(str, given)) - known)
        if unknown:
            where_ = f"{section}." if section else ""
            raise BadInputError(f"{p}: unknown key {where_}{unknown[0]!r} (known: {', '.join(sorted(known))})")
    where = str(p)
    fields_ = _list(kw, "fields", where) or ["title", "body"]
    bad = [f for f in fields_ if f not in ("title", "body")]
    if bad:
        raise BadInputError(f"{p}: keywords.fields may hold title and body, not {bad[0]!r}")
    required = kw.get("required", False)
    if not isinstance(required, bool):  # YAML's "maybe" or "1" would otherwise read as true
        raise BadInputError(f"{p}: keywords.required must be true or false, not {required!r}")
    return FilterRules(
        name=str(data.get("name") or p.stem), terms=_list(kw, "terms", where), fields=fields_,
        keywords_required=required, require_any=_list(lab, "require_any", where),
        require_all=_list(lab, "require_all", where), exclude_any=_list(lab, "exclude_any", where),
        states=_list(data, "states", where), description=str(data.get("description") or "").strip(),
        source=where,
    )  # fmt: skip

"""Probe suites: YAML data files naming checks, their oracle parameters and the liu2025
classification of their failures.

A built-in suite is named (``default``, ``quick``); a user's suite is a path. A user suite may
``extends: default`` and then keep ``only`` some inherited checks, ``overrides`` their
parameters, and add its own ``checks`` (run after the inherited ones, in file order)::

    name: my-gate
    extends: quick
    overrides:
      load: {concurrency: 32, bound_s: 60}
    checks:
      - id: json_mode
        oracle: request
        params:
          path: /chat/completions
          body: {messages: [{role: user, content: "Reply with {}"}], max_tokens: 8}
          expect: {status: 200, assert: [{path: choices.0.finish_reason, op: in, value: [stop, length]}]}
        symptom: Feature Failure
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml

FAILURE_KINDS = ("assertion", "timeout", "unreachable", "server_error", "rejected", "accepted",
                 "unclear_error", "not_alive", "slow")  # fmt: skip


@dataclass
class Check:
    id: str
    oracle: str
    title: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    symptom: str = "Unexpected Output"
    unexpected_output: str | None = None
    symptoms: dict[str, str] = field(default_factory=dict)  # failure kind -> symptom

    def classify(self, kind: str, suite: Suite) -> tuple[str, str | None]:
        """The liu2025 symptom (and Unexpected Output sub-type) of a failure of this kind."""
        symptom = self.symptoms.get(kind) or (
            self.symptom if kind in ("assertion", "accepted", "slow") else suite.classification.get(kind)
        ) or self.symptom
        subtype = self.unexpected_output if symptom == "Unexpected Output" else None
        return symptom, subtype


@dataclass
class Suite:
    name: str
    title: str
    taxonomy: str
    classification: dict[str, str]
    defaults: dict[str, Any]
    checks: list[Check]
    source: str

    def params_for(self, check: Check) -> dict[str, Any]:
        return {**self.defaults, **check.params}

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise BadInputError(f"suite {self.name}: no check {check_id!r} (have: {', '.join(c.id for c in self.checks)})")


def builtin_suites() -> list[str]:
    folder = resources.files("bugatlas.probe") / "suites"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    text: str
    if isinstance(name_or_path, str) and name_or_path in builtin_suites():
        res = resources.files("bugatlas.probe") / "suites" / f"{name_or_path}.yaml"
        text, source = res.read_text(encoding="utf-8"), f"builtin:{name_or_path}"
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise BadInputError(
                f"--suite {name_or_path}: neither a built-in suite ({', '.join(builtin_suites())}) nor a file"
            )
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"--suite {name_or_path}: cannot read it ({exc})") from exc
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise BadInputError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{source}: a suite is a YAML mapping with a `checks` list")
    return data, source


_SUITE_KEYS = {"name", "title", "taxonomy", "extends", "only", "overrides", "classification", "defaults", "checks"}


def load_suite(name_or_path: str | Path = "default", *, _seen: tuple[str, ...] = ()) -> Suite:
    """Load a built-in suite by name or a user's suite file, resolving ``extends``."""
    data, source = _read(name_or_path)
    if source in _seen:
        raise BadInputError(f"{source}: `extends` loops back to itself")
    extra = set(data) - _SUITE_KEYS
    if extra:
        raise BadInputError(f"{source}: unknown keys {', '.join(sorted(map(str, extra)))} "
                            f"(a suite has {', '.join(sorted(_SUITE_KEYS))})")
    for key, kind, shape in (("checks", list, "a list of checks"), ("only", list, "a list of check ids"),
                             ("overrides", dict, "a mapping of check id to parameters"),
                             ("classification", dict, "a mapping of failure kind to symptom"),
                             ("defaults", dict, "a mapping of parameters")):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise BadInputError(f"{source}: `{key}` must be {shape}")
    base: Suite | None = None
    if data.get("extends"):
        parent = data["extends"]
        if not isinstance(name_or_path, str) or name_or_path not in builtin_suites():
            # a relative parent path is relative to the file that names it
            cand = Path(name_or_path).parent / str(parent)
            parent = str(cand) if cand.exists() else parent
        base = load_suite(parent, _seen=(*_seen, source))
    checks: list[Check] = list(base.checks) if base else []
    only = data.get("only")  # keeps these inherited checks; the file's own checks always run
    if only:
        unknown = set(only) - {c.id for c in checks}
        if unknown:
            raise BadInputError(f"{source}: `only` names unknown checks: {', '.join(sorted(unknown))}")
        checks = [c for c in checks if c.id in set(only)]
    own: dict[str, int] = {}
    for i, raw in enumerate(data.get("checks") or []):
        check = _parse_check(raw, f"{source}: checks[{i}]")
        if check.id in own:  # twice in one file: one of them would silently never run
            raise BadInputError(f"{source}: checks[{i}]: id {check.id!r} is already checks[{own[check.id]}]")
        own[check.id] = i
        checks = [c for c in checks if c.id != check.id] + [check]  # an inherited check of that id is replaced
    for cid, params in (data.get("overrides") or {}).items():
        matches = [c for c in checks if c.id == cid]
        if not matches or not isinstance(params, dict):
            raise BadInputError(f"{source}: overrides.{cid}: no such check, or not a mapping")
        matches[0].params = {**matches[0].params, **params}
    suite = Suite(
        name=str(data.get("name") or (base.name if base else Path(str(name_or_path)).stem)),
        title=str(data.get("title") or (base.title if base else "")),
        taxonomy=str(data.get("taxonomy") or (base.taxonomy if base else "liu2025")),
        classification={**(base.classification if base else {}), **(data.get("classification") or {})},
        defaults={**(base.defaults if base else {}), **(data.get("defaults") or {})},
        checks=checks,
        source=source,
    )
    validate_suite(suite)
    return suite


def _parse_check(raw: Any, where: str) -> Check:
    if not isinstance(raw, dict) or not raw.get("id") or not raw.get("oracle"):
        raise BadInputError(f"{where}: a check needs at least `id` and `oracle`")
    known = {"id", "oracle", "title", "params", "symptom", "unexpected_output", "symptoms"}
    extra = set(raw) - known
    if extra:
        raise BadInputError(f"{where} ({raw['id']}): unknown keys {', '.join(sorted(extra))}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise BadInputError(f"{where} ({raw['id']}): `params` must be a mapping")
    return Check(
        id=str(raw["id"]), oracle=str(raw["oracle"]), title=str(raw.get("title") or ""),
        params=dict(params), symptom=str(raw.get("symptom") or "Unexpected Output"),
        unexpected_output=raw.get("unexpected_output"), symptoms=dict(raw.get("symptoms") or {}),
    )  # fmt: skip


def _symptom_names(taxonomy: str) -> tuple[set[str], set[str]]:
    """Top-level symptom names and Unexpected Output sub-type names of the taxonomy."""
    from bugatlas.taxonomy import load_codebook

    dim = load_codebook(taxonomy).dimension("symptom")
    top = {c.name for c in dim.at_level(0)}
    sub = {c.name for c in dim.at_level(1)} if dim.depth() > 1 else set()
    return top, sub


def validate_suite(suite: Suite) -> None:
    """Every oracle exists and every symptom is a category of the suite's taxonomy."""
    from bugatlas.probe.oracles import ORACLES

    symptoms, subtypes = _symptom_names(suite.taxonomy)
    ids: set[str] = set()
    for kind, name in suite.classification.items():
        if kind not in FAILURE_KINDS:
            raise BadInputError(f"{suite.source}: classification.{kind}: unknown failure kind "
                                f"(known: {', '.join(FAILURE_KINDS)})")  # fmt: skip
        if name not in symptoms:
            raise BadInputError(f"{suite.source}: classification.{kind}: {name!r} is not a {suite.taxonomy} symptom")
    for c in suite.checks:
        if c.id in ids:
            raise BadInputError(f"{suite.source}: check id {c.id!r} appears twice")
        ids.add(c.id)
        if c.oracle not in ORACLES:
            raise BadInputError(f"{suite.source}: check {c.id}: unknown oracle {c.oracle!r} "
                                f"(known: {', '.join(sorted(ORACLES))})")  # fmt: skip
        for name in [c.symptom, *c.symptoms.values()]:
            if name not in symptoms:
                raise BadInputError(f"{suite.source}: check {c.id}: {name!r} is not a {suite.taxonomy} "
                                    f"symptom ({', '.join(sorted(symptoms))})")  # fmt: skip
        for kind in c.symptoms:
            if kind not in FAILURE_KINDS:
                raise BadInputError(f"{suite.source}: check {c.id}: symptoms.{kind}: unknown failure kind")
        if c.unexpected_output and subtypes and c.unexpected_output not in subtypes:
            raise BadInputError(f"{suite.source}: check {c.id}: unexpected_output {c.unexpected_output!r} "
                                f"is not one of {', '.join(sorted(subtypes))}")  # fmt: skip

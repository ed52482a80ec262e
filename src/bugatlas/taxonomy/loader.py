"""Finding, reading and validating codebook files.

A codebook is named either by a built-in name (``liu2025``), by the name of a file in a user
codebook folder (``BUGATLAS_CODEBOOKS``, ``os.pathsep``-separated), or by a path to a YAML file.
User folders are searched before the built-in ones, so a user can override a built-in codebook.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bugatlas.files import load_yaml
from bugatlas.taxonomy.model import Category, Codebook, CodebookError, Dimension, normalize_name

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "codebooks"
ENV_DIRS = "BUGATLAS_CODEBOOKS"
_CATEGORY_FIELDS = {f.name for f in fields(Category)} - {"dimension", "extra"}
_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")

_cache: dict[tuple[str, float], Codebook] = {}


def codebook_dirs() -> list[Path]:
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_DIRS, "").split(os.pathsep) if p.strip()]
    return [*dirs, BUILTIN_DIR]


def _is_codebook_file(path: Path) -> bool:
    """A codebook has a top-level ``dimensions:`` key (datasets.yaml and the like do not)."""
    try:
        st = path.stat()
    except OSError:
        return False
    return _has_dimensions(str(path), st.st_mtime)


@lru_cache(maxsize=256)
def _has_dimensions(path: str, mtime: float) -> bool:
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except Exception:
        return False
    return isinstance(data, dict) and "dimensions" in data


def codebook_files() -> dict[str, Path]:
    """Every codebook reachable by name -> its file (user folders shadow built-ins)."""
    found: dict[str, Path] = {}
    for d in reversed(codebook_dirs()):
        if not d.is_dir():
            continue
        for p in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            if _is_codebook_file(p):
                found[p.stem] = p
    return found


def list_codebooks() -> list[str]:
    """Names of the codebooks ``load_codebook`` accepts by name (built-in and user folders)."""
    return sorted(codebook_files())


def is_codebook_path(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether a --taxonomy value names a YAML file (a suffix or a folder in it), not a codebook name."""
    s = str(name_or_path)
    return Path(s).suffix in (".yaml", ".yml") or os.sep in s or "/" in s


def resolve_codebook(name_or_path: str | os.PathLike[str]) -> Path:
    s = str(name_or_path)
    p = Path(s).expanduser()
    if is_codebook_path(s):
        if not p.is_file():
            raise CodebookError(f"codebook file not found: {s}")
        return p.resolve()
    # By name: the first folder holding NAME.yaml wins (user folders before the built-ins). Looking
    # at the one candidate file per folder keeps a lookup from parsing every codebook.
    for d in codebook_dirs():
        for ext in (".yaml", ".yml"):
            cand = d / f"{s}{ext}"
            if cand.is_file():  # reading it reports precisely what is wrong, if anything
                return cand.resolve()
    files = codebook_files()
    raise CodebookError(f"unknown codebook {s!r} (known: {', '.join(sorted(files))}; or give a YAML path)")


def load_codebook(name_or_path: str | os.PathLike[str] | Codebook) -> Codebook:
    """A codebook by built-in name, user-folder name or YAML path; cached per file version.

    Raises :class:`CodebookError` (one line naming the file and category) when it is invalid."""
    if isinstance(name_or_path, Codebook):
        return name_or_path
    path = resolve_codebook(name_or_path)
    key = (str(path), path.stat().st_mtime)
    cb = _cache.get(key)
    if cb is None:
        cb, problems = _read(path)
        if problems:
            more = f" (and {len(problems) - 1} more; run `bugatlas taxonomy validate {path}`)" if len(problems) > 1 else ""
            raise CodebookError(problems[0] + more)
        _cache[key] = cb
    return cb


def validate_codebook(name_or_path: str | os.PathLike[str]) -> list[str]:
    """Every problem of a codebook file, one line each naming the file and category; [] if valid."""
    try:
        path = resolve_codebook(name_or_path)
    except CodebookError as e:
        return [str(e)]
    cb, problems = _read(path)
    if not problems:
        problems = _mapping_problems(cb) + _domain_problems(path)
    return problems


def _domain_problems(path: Path) -> list[str]:
    """``domains:`` (base rates by repository, used by classify) must name top levels and
    categories of the codebook (what classify would otherwise only report when run)."""
    from bugatlas.classify.domains import domains_of
    from bugatlas.classify.schema import taxonomy_spec
    from bugatlas.errors import BadInputError

    try:
        domains_of(taxonomy_spec(str(path)))
    except BadInputError as e:
        return [str(e)]
    return []


def _mapping_problems(cb: Codebook) -> list[str]:
    """Each ``mappings:`` target must be a known codebook, and every entry must name a category
    of both codebooks (what `taxonomy map` would otherwise only report when run)."""
    from bugatlas.errors import BadInputError
    from bugatlas.taxonomy.mapping import get_mapping

    problems = []
    for target in cb.mappings:
        try:
            tgt = load_codebook(str(target))
        except CodebookError as e:
            problems.append(f"{cb.source}: mappings: target {target!r}: {e}")
            continue
        if tgt.name != str(target):
            problems.append(f"{cb.source}: mappings: target {target!r}: that file's codebook is named {tgt.name!r}")
            continue
        try:
            get_mapping(cb, tgt)
        except BadInputError as e:
            problems.append(str(e))
    return problems


def _as_list(value: Any, where: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    problems.append(f"{where}: expected a list of strings")
    return []


def _read(path: Path) -> tuple[Codebook, list[str]]:
    problems: list[str] = []
    f = str(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        msg = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CodebookError(f"{f}{where}: not valid YAML: {msg}") from None
    except OSError as e:
        raise CodebookError(f"{f}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CodebookError(f"{f}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                            "save the codebook as UTF-8") from None
    if not isinstance(data, dict):
        raise CodebookError(f"{f}: a codebook is a YAML mapping with 'name' and 'dimensions'")
    name = str(data.get("name") or path.stem)
    dims_data = data.get("dimensions")
    if not isinstance(dims_data, dict) or not dims_data:
        problems.append(f"{f}: 'dimensions' must be a non-empty mapping of dimension name -> spec")
        dims_data = {}
    dimensions: dict[str, Dimension] = {}
    for dname, spec in dims_data.items():
        dname = str(dname)
        where_d = f"{f}: dimension {dname}"
        if not isinstance(spec, dict):
            problems.append(f"{where_d}: expected a mapping with 'categories'")
            continue
        cats_data = spec.get("categories")
        if not isinstance(cats_data, list) or not cats_data:
            problems.append(f"{where_d}: 'categories' must be a non-empty list")
            cats_data = []
        cats: dict[str, Category] = {}
        seen_names: dict[str, str] = {}
        for i, raw in enumerate(cats_data, 1):
            if not isinstance(raw, dict):
                problems.append(f"{where_d}: category #{i} is not a mapping")
                continue
            cid = str(raw.get("id") or "").strip()
            cname = str(raw.get("name") or "").strip()
            where = f"{where_d}: category {cid or cname or '#' + str(i)}"
            if not cid:
                problems.append(f"{where}: missing 'id'")
                continue
            if not _ID.match(cid):
                problems.append(f"{where}: id may hold only letters, digits, '_', '-', '.'")
            if not cname:
                problems.append(f"{where}: missing 'name'")
                cname = cid
            if cid in cats:
                problems.append(f"{where}: duplicate id {cid!r}")
                continue
            unknown = set(raw) - _CATEGORY_FIELDS
            extra = {k: raw[k] for k in unknown}
            for key in [cname, *(_as_list(raw.get("aliases"), where, []))]:
                norm = normalize_name(key)
                if norm in seen_names and seen_names[norm] != cid:
                    problems.append(f"{where}: name or alias {key!r} already used by {seen_names[norm]!r} in this dimension")
                seen_names.setdefault(norm, cid)
            signals = _as_list(raw.get("signals"), f"{where}: signals", problems)
            for s in signals:
                try:
                    re.compile(s, re.IGNORECASE)
                except re.error as e:
                    problems.append(f"{where}: signal {s!r} is not a valid regular expression: {e}")
            counts = {}
            for k in ("published_count", "dataset_count"):
                v = raw.get(k)
                if v is not None and not isinstance(v, int):
                    problems.append(f"{where}: {k} must be an integer")
                    v = None
                counts[k] = v
            parent = raw.get("parent")
            cats[cid] = Category(
                id=cid, name=cname, dimension=dname,
                parent=None if parent in (None, "") else str(parent),
                definition=str(raw.get("definition") or "").strip(),
                include=_as_list(raw.get("include"), f"{where}: include", problems),
                exclude=_as_list(raw.get("exclude"), f"{where}: exclude", problems),
                signals=signals,
                next_steps=_as_list(raw.get("next_steps"), f"{where}: next_steps", problems),
                aliases=_as_list(raw.get("aliases"), f"{where}: aliases", problems),
                verified=bool(raw.get("verified", True)), note=str(raw.get("note") or "").strip(),
                extra=extra, **counts,
            )  # fmt: skip
        for c in cats.values():
            if c.parent is not None and c.parent not in cats:
                problems.append(f"{where_d}: category {c.id}: parent {c.parent!r} does not exist in this dimension")
        # A parent cycle would make path() loop forever.
        for c in cats.values():
            seen, cur = {c.id}, c
            while cur.parent is not None and cur.parent in cats:
                if cur.parent in seen:
                    problems.append(f"{where_d}: category {c.id}: parent cycle through {cur.parent!r}")
                    break
                seen.add(cur.parent)
                cur = cats[cur.parent]
        levels = _as_list(spec.get("levels"), f"{where_d}: levels", problems)
        for flag in ("multi_label", "required"):  # YAML's quoted "no" would read as true
            if not isinstance(spec.get(flag, False), bool):
                problems.append(f"{where_d}: {flag} must be true or false, not {spec.get(flag)!r}")
        if problems:
            dimensions[dname] = Dimension.__new__(Dimension)  # placeholder; codebook is unusable
            continue
        dim = Dimension(name=dname, categories=cats, multi_label=bool(spec.get("multi_label", False)),
                        levels=levels, title=str(spec.get("title") or dname),
                        description=str(spec.get("description") or "").strip(),
                        required=bool(spec.get("required", False)),
                        leaf_dimension=spec.get("leaf_dimension") or None)  # fmt: skip
        if levels and len(levels) < dim.depth():
            problems.append(f"{where_d}: 'levels' names {len(levels)} level(s) but categories nest {dim.depth()} deep")
        dimensions[dname] = dim
    mappings = data.get("mappings") or {}
    if not isinstance(mappings, dict):
        problems.append(f"{f}: 'mappings' must be a mapping of target codebook -> dimension maps")
        mappings = {}
    known = {"name", "title", "citation", "description", "version", "dimensions", "mappings"}
    cb = Codebook(name=name, title=str(data.get("title") or name), dimensions=dimensions,
                  citation=str(data.get("citation") or "").strip(),
                  description=str(data.get("description") or "").strip(),
                  version=str(data.get("version") or "1"), source=f,
                  builtin=path.parent.resolve() == BUILTIN_DIR, mappings=mappings,
                  extra={k: v for k, v in data.items() if k not in known})  # fmt: skip
    return cb, problems

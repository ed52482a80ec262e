"""`bugatlas run STUDY.yaml`: the whole pipeline a study file describes, ending with the
report. Steps: import → collect → hydrate → filter → map → classify → report.

Resumable: every step records a run in the store (command ``study <step>``) with a
fingerprint of its configuration, its input files (size and modification time) and the
fingerprints of the steps before it; a step whose fingerprint already has a successful run is
skipped. Paths in the study file resolve relative to the study file; ``${var}`` expands from
``vars:`` (overridden by the environment variable ``BUGATLAS_<VAR>``).

Stages built by other parts of BugAtlas (filter, classify, collect) are called through their
library functions when they are installed; a step whose stage is missing is skipped with a
message saying so, and the report is built from what the store holds.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from bugatlas import __version__
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.files import load_yaml
from bugatlas.store import Store

STEPS = ("import", "collect", "hydrate", "filter", "map", "classify", "report")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KNOWN_KEYS = {"name", "title", "description", "vars", "store", "sources", "filter", "taxonomy", "map",
               "classify", "analysis", "audit", "report"}  # fmt: skip


@dataclass
class StepResult:
    step: str
    status: str  # ran | skipped (done) | skipped (not configured) | unavailable | failed
    seconds: float = 0.0
    message: str = ""
    run_id: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status, "seconds": round(self.seconds, 3),
                "message": self.message, "run_id": self.run_id, "summary": self.summary}  # fmt: skip


@dataclass
class Study:
    path: Path
    name: str
    title: str
    spec: dict[str, Any]
    variables: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, value: str | os.PathLike[str]) -> Path:
        p = Path(self.expand(str(value))).expanduser()
        return p if p.is_absolute() else (self.folder / p).resolve()

    def expand(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in self.variables:
                raise BadInputError(f"{self.path}: ${{{key}}} is not defined under vars:")
            return self.variables[key]

        return _VAR.sub(sub, text)

    def section(self, key: str) -> Any:
        return self.spec.get(key)

    def codebook(self, value: Any) -> Any:
        """A taxonomy named by a codebook YAML path resolves relative to the study file, like
        every other path in it; a codebook name stays a name."""
        from bugatlas.taxonomy.loader import is_codebook_path

        if isinstance(value, str) and is_codebook_path(value):
            return str(self.resolve(value))
        return value

    def codebook_files(self, *values: Any) -> list[Path]:
        """The codebook files among ``values`` (an edited codebook re-runs the steps using it)."""
        return [Path(v) for v in map(self.codebook, values) if isinstance(v, str) and Path(v).is_file()]

    @property
    def store_path(self) -> Path:
        return self.resolve(self.spec.get("store") or f"../build/{self.name}/study.db")

    @property
    def report_dir(self) -> Path:
        rep = self.spec.get("report") or {}
        return self.resolve(rep.get("out") or f"../build/{self.name}/report")


def load_study_file(path: str | os.PathLike[str]) -> Study:
    path = Path(path).resolve()
    try:
        spec = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the study file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise BadInputError(f"{path}: {where}not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(spec, dict):
        raise BadInputError(f"{path}: a study file is a YAML mapping (name, sources, taxonomy, report, …)")
    unknown = sorted(set(spec) - _KNOWN_KEYS)
    if unknown:
        raise BadInputError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KNOWN_KEYS))})")
    for key in ("vars", "sources", "analysis", "audit", "report", "filter", "map", "classify"):
        value = spec.get(key)
        if value is not None and value is not False and not isinstance(value, dict):
            raise BadInputError(f"{path}: {key}: expected a mapping (key: value, or {{}} for the defaults), "
                                f"got {type(value).__name__} {value!r}"[:300])
    sources = spec.get("sources") or {}
    imports = sources.get("import")
    if imports is not None and not (isinstance(imports, list) and all(isinstance(p, str) for p in imports)):
        raise BadInputError(f"{path}: sources.import: expected a list of paths ([a.jsonl.gz, b.csv]), got {imports!r}"[:300])
    if sources.get("collect") is not None and not isinstance(sources["collect"], dict):
        raise BadInputError(f"{path}: sources.collect: expected a mapping (repos: [owner/name, …])")
    name = str(spec.get("name") or path.stem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise BadInputError(f"{path}: name {name!r}: use letters, digits, '.', '_' or '-'")
    variables = {str(k): str(v) for k, v in (spec.get("vars") or {}).items()}
    for k in list(variables):
        env = os.environ.get(f"BUGATLAS_{k.upper()}")
        if env:
            variables[k] = env
    # relative variable values are paths relative to the study file
    for k, v in variables.items():
        if v and not os.path.isabs(v) and (v.startswith(".") or "/" in v):
            variables[k] = str((path.parent / v).resolve())
    return Study(path=path, name=name, title=str(spec.get("title") or name), spec=spec, variables=variables)


# -- fingerprints -------------------------------------------------------------------------------------
def _file_state(p: Path) -> list[Any]:
    if p.is_dir():
        return [[str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(p.rglob("*")) if f.is_file()]
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def fingerprint(step: str, config: Any, files: list[Path], upstream: str) -> str:
    blob = orjson.dumps({"step": step, "config": config, "files": {str(f): _file_state(f) for f in files},
                         "upstream": upstream, "version": __version__}, option=orjson.OPT_SORT_KEYS)  # fmt: skip
    return hashlib.sha256(blob).hexdigest()[:16]


def _done(store: Store, step: str, fp: str) -> int | None:
    """The step's last run for this fingerprint, if it succeeded: a later run that failed or
    was interrupted (``--from``/``--force`` stopped halfway) may have left its outputs half
    rewritten, so the step is not done."""
    rows = store.query(
        "SELECT id, status FROM runs WHERE command = ? AND json_extract(params, '$.fingerprint') = ? "
        "AND status != 'skipped' ORDER BY id DESC LIMIT 1",
        (f"study {step}", fp),
    )
    return int(rows[0]["id"]) if rows and rows[0]["status"] == "ok" else None


# -- stage adapters ---------------------------------------------------------------------------------
def _stage_function(module: str, names: tuple[str, ...], configured: str | None) -> Callable[..., Any] | None:
    """A stage's library entry point: ``configured`` ("module:function") or the first of
    ``names`` in ``module``; None when the stage is not installed."""
    if configured:
        mod_name, _, fn = configured.partition(":")
        try:
            return getattr(importlib.import_module(mod_name), fn)
        except (ImportError, AttributeError) as exc:
            raise BadInputError(f"function {configured!r}: not found ({exc})") from exc
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise
    for n in names:
        fn = getattr(mod, n, None)
        if callable(fn):
            return fn
    return None


def _call(fn: Callable[..., Any], store: Store, options: dict[str, Any]) -> Any:
    """Call a stage function with the options it accepts (others are reported, not dropped
    silently)."""
    sig = inspect.signature(fn)
    accepts_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [k for k in options if k not in sig.parameters and not accepts_kw]
    if unknown:
        raise BadInputError(f"{fn.__module__}.{fn.__name__}: unknown option {unknown[0]!r} "
                            f"(it takes {', '.join(p for p in sig.parameters if p != 'store')})")  # fmt: skip
    return fn(store, **options)


def _summarise(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    for attr in ("as_dict", "to_dict"):
        if hasattr(result, attr):
            try:
                out = getattr(result, attr)()
                return out if isinstance(out, dict) else {"result": out}
            except TypeError:
                pass
    if isinstance(result, dict):
        return result
    if isinstance(result, list):
        return {"items": len(result)}
    return {"result": str(result)[:200]}


# -- the runner ------------------------------------------------------------------------------------------
class Runner:
    def __init__(self, study: Study, *, force: bool = False, start: str | None = None,
                 progress: Callable[[str], None] | None = None):  # fmt: skip
        if start is not None and start not in STEPS:
            raise BadInputError(f"--from {start!r}: steps are {', '.join(STEPS)}")
        self.study, self.force, self.start = study, force, start
        self.say = progress or (lambda _msg: None)
        self.bars = progress is not None  # the stages' own rich progress bars, for people
        self.results: list[StepResult] = []

    def run(self) -> list[StepResult]:
        s = self.study
        db = s.store_path
        db.parent.mkdir(parents=True, exist_ok=True)
        upstream = ""
        forcing = self.force
        with Store(db) as store:
            for i, step in enumerate(STEPS, 1):
                if self.start == step:
                    forcing = True
                config, files = self._config(step)
                if config is None:
                    self.results.append(StepResult(step, "skipped (not configured)"))
                    continue
                fp = fingerprint(step, config, files, upstream)
                upstream = fp
                prev = None if forcing else _done(store, step, fp)
                if prev is not None and (step != "report" or (s.report_dir / "index.html").exists()):
                    self.results.append(StepResult(step, "skipped (done)", message=f"same inputs as run #{prev}", run_id=prev))
                    self.say(f"[{i}/{len(STEPS)}] {step}: already done for these inputs (run #{prev})")
                    continue
                forcing = True  # everything after a re-run step runs again
                self.say(f"[{i}/{len(STEPS)}] {step} …")
                t0 = time.perf_counter()
                try:
                    with store.run(f"study {step}", {"study": s.name, "file": str(s.path), "fingerprint": fp}) as run:
                        status, message, summary = getattr(self, f"_step_{step}")(store, config)
                        run.summary = {"status": status, "message": message, **summary}
                except BugAtlasError as exc:
                    self.results.append(StepResult(step, "failed", time.perf_counter() - t0, str(exc)))
                    raise
                res = StepResult(step, status, time.perf_counter() - t0, message, run.id, summary)
                if status == "unavailable":
                    # record nothing as done: when the stage is installed, the next run does it
                    store.conn.execute("UPDATE runs SET status = 'skipped' WHERE id = ?", (run.id,))
                    upstream = fp + ":unavailable"
                self.results.append(res)
                self.say(f"[{i}/{len(STEPS)}] {step}: {status}" + (f" — {message}" if message else "")
                         + f" ({res.seconds:.1f}s)")  # fmt: skip
        return self.results

    # -- step configuration: (config or None, input files) ---------------------------------------
    def _config(self, step: str) -> tuple[Any, list[Path]]:
        s = self.study
        sources = s.section("sources") or {}
        if step == "import":
            paths = [s.resolve(p) for p in (sources.get("import") or [])]
            for p in paths:
                if not p.exists():
                    raise BadInputError(f"{s.path}: sources.import: {p} does not exist")
            return ([str(p) for p in paths] or None), paths
        if step == "collect":
            c = sources.get("collect")
            return (c or None), []
        if step == "hydrate":
            return (sources.get("hydrate") or None), []
        if step == "filter":  # "filter: {}" runs the filter stage with its defaults
            f = s.section("filter")
            if f is None or f is False:
                return None, []
            f, files = dict(f or {}), []
            # a rules file or model named by path resolves relative to the study file, and an
            # edited one re-runs the step (built-in rules are named: default, yu2026, liu2025)
            for key in ("rules", "model_path"):
                v = f.get(key)
                if isinstance(v, str) and (key == "model_path" or Path(v).suffix in (".yaml", ".yml") or "/" in v):
                    f[key] = str(s.resolve(v))
                    if Path(f[key]).is_file():
                        files.append(Path(f[key]))
            return f, files
        if step == "map":
            m = s.section("map")
            if m is None:
                return None, []
            m = {"to": s.codebook(s.section("taxonomy")), **m}
            m["from"] = s.codebook(m.get("from"))
            return m, s.codebook_files(m["from"], m["to"])
        if step == "classify":
            c = s.section("classify")
            if c is None or c is False:
                return None, []
            c = {"taxonomy": s.codebook(s.section("taxonomy")), **(c or {})}
            c["taxonomy"] = s.codebook(c["taxonomy"])
            return c, s.codebook_files(c["taxonomy"])
        if step == "report":
            files = [s.resolve(f) for f in (s.section("audit") or {}).get("files", [])]
            files += s.codebook_files((s.section("analysis") or {}).get("taxonomy", s.section("taxonomy")))
            # the printed numbers are data too: an edited published.yaml re-runs the report
            files.append(Path(str(resources.files("bugatlas.analyze") / "published.yaml")))
            return {"analysis": s.section("analysis"), "audit": s.section("audit"), "report": s.section("report"),
                    "taxonomy": s.section("taxonomy"), "title": s.title, "out": str(s.report_dir)}, files  # fmt: skip
        raise AssertionError(step)

    # -- steps: return (status, message, summary) --------------------------------------------------
    def _step_import(self, store: Store, paths: list[str]):
        from bugatlas.importers import import_paths

        results = import_paths(store, [Path(p) for p in paths], progress=self.bars)
        issues = sum(r.issues for r in results)
        labels = sum(r.labels for r in results)
        return "ran", f"{len(results)} file(s), {issues} issue records, {labels} labels", {
            "files": len(results), "issues": issues, "labels": labels}

    def _step_collect(self, store: Store, config: dict[str, Any]):
        fn = _stage_function("bugatlas.collect", ("collect_repos",), config.get("function"))
        if fn is None:
            return "unavailable", "the collect stage is not in this build: skipped (the store keeps what was imported)", {}
        opts = {k: v for k, v in config.items() if k != "function"}
        if "progress" in inspect.signature(fn).parameters:
            opts.setdefault("progress", self.bars)
        repos = opts.pop("repos", None) or opts.pop("repositories", None)
        if not repos:
            raise BadInputError(f"{self.study.path}: sources.collect needs repos: [owner/name, …]")
        result = fn(store, list(repos), **opts)
        return "ran", f"{len(repos)} repository(ies)", _summarise(result)

    def _step_hydrate(self, store: Store, config: Any):
        fn = _stage_function("bugatlas.collect", ("hydrate_references",), None)
        if fn is None:
            return "unavailable", "the collect stage is not in this build: references stay without text", {}
        opts = dict(config) if isinstance(config, dict) else {}
        if "progress" in inspect.signature(fn).parameters:
            opts.setdefault("progress", self.bars)
        result = fn(store, **opts)
        return "ran", "referenced issues hydrated", _summarise(result)

    def _step_filter(self, store: Store, config: dict[str, Any]):
        fn = _stage_function("bugatlas.filter", ("filter_store", "run_filter", "filter_issues", "apply_filter"),
                             config.get("function"))  # fmt: skip
        if fn is None:
            return "unavailable", "the filter stage is not in this build: skipped (the study analyses every issue)", {}
        opts = {k: v for k, v in config.items() if k != "function"}
        summary = _summarise(_call(fn, store, opts))
        msg = "failure reports selected"
        if _sql_ok(store, "SELECT repo, number FROM failure_reports"):
            n = store.query("SELECT COUNT(*) AS n FROM failure_reports")[0]["n"]
            msg = f"{n} failure reports of {store.count_issues(include_references=False)} issues"
        return "ran", msg, summary

    def _step_map(self, store: Store, config: dict[str, Any]):
        if not config.get("from") or not config.get("to"):
            raise BadInputError(f"{self.study.path}: map needs from: TAXONOMY (and a study taxonomy: to map into)")
        fn = _stage_function("bugatlas.taxonomy.mapping", ("map_store_labels",), config.get("function"))
        if fn is None:
            return "unavailable", "the taxonomy mapping is not in this build: the labels stay in their own taxonomy", {}
        try:
            report = fn(store, config["from"], config["to"])
        except BugAtlasError:
            raise
        except Exception as exc:  # no mapping between these codebooks (yet)
            return "unavailable", f"no mapping {config['from']} → {config['to']} ({exc})", {}
        return "ran", f"{config['from']} labels mapped into {config['to']}", _summarise(report)

    def _step_classify(self, store: Store, config: dict[str, Any]):
        fn = _stage_function("bugatlas.classify", ("classify_store", "classify", "run_classifier"), config.get("function"))
        if fn is None:
            return "unavailable", "the classify stage is not in this build: skipped (the report uses the labels in the store)", {}
        opts = {k: v for k, v in config.items() if k != "function"}
        summary = _summarise(_call(fn, store, opts))
        msg = f"classified into {config.get('taxonomy')}"
        if "labeled" in summary:
            msg = (f"{summary['labeled']} issues labelled into {config.get('taxonomy')}"
                   + (f" ({summary['skipped']} already done)" if summary.get("skipped") else ""))  # fmt: skip
        return "ran", msg, summary

    def _step_report(self, store: Store, config: dict[str, Any]):
        from bugatlas.analyze.data import taxonomy_name
        from bugatlas.report.build import build_report

        s = self.study
        analysis = dict(s.section("analysis") or {})
        unknown = sorted(set(analysis) - {"taxonomy", "source", "by", "only", "attach", "names"})
        if unknown:  # before anything is written: a misspelt key would be silently left out
            raise BadInputError(f"{s.path}: analysis: unknown key {unknown[0]!r} "
                                "(taxonomy, source, by, only, attach, names)")  # fmt: skip
        taxonomy = s.codebook(analysis.pop("taxonomy", s.section("taxonomy")))
        notes = []
        have = {x["taxonomy"] for x in store.label_sources()}
        if taxonomy and taxonomy_name(taxonomy) not in have:
            notes.append(f"no {taxonomy} labels in the store (was the classify step skipped?): reporting the issues only")
            taxonomy = None
        restrict = analysis.pop("only", None)
        if restrict and not _sql_ok(store, restrict):
            notes.append("analysis.only query failed (is the filter stage installed?): analysing every issue")
            restrict = None
        audit = s.section("audit") or {}
        rep = s.section("report") or {}
        result = build_report(
            store, s.report_dir, taxonomy=taxonomy, source=analysis.pop("source", None),
            title=rep.get("title") or s.title, by=analysis.pop("by", "repository"), restrict=restrict,
            attach=analysis.pop("attach", None), names=analysis.pop("names", None), audit_papers=audit.get("papers"),
            audit_files=[s.resolve(f) for f in audit.get("files", [])], audit=audit.get("enabled", True),
        )  # fmt: skip
        msg = f"{result.html} ({result.figures} figures, {len(result.tables)} tables)"
        return "ran", "; ".join([msg, *notes]), result.as_dict()


def _sql_ok(store: Store, sql: str) -> bool:
    try:
        store.conn.execute(f"SELECT 1 FROM ({sql}) LIMIT 1").fetchall()
        return True
    except Exception:
        return False


def run_study(path: str | os.PathLike[str], *, force: bool = False, start: str | None = None,
              progress: Callable[[str], None] | None = None) -> tuple[Study, list[StepResult]]:  # fmt: skip
    """Run a study file; returns the study and what each step did."""
    study = load_study_file(path)
    return study, Runner(study, force=force, start=start, progress=progress).run()

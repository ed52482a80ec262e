"""Parse an error log into a normalized failure: signature, frames, engine, component, versions.

Everything that is specific to an engine's output lives in ``patterns.yaml``; this module only
knows how to apply it. Parsing runs one ``finditer`` per pattern over the whole log (not a Python
loop per line and pattern), so indexing 100,000 issue bodies stays in the minutes.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from bugatlas.files import load_yaml

MAX_LOG_CHARS = 200_000  # a pasted log beyond this is truncated (keep the tail: errors end logs)
MAX_SIGNATURE_CHARS = 160
_EXC_WORD = re.compile(r"(?:Error|Exception): ")
_MARKDOWN = re.compile(r"^\s*(?:>\s?)+|^\*\*|\*\*$")


@dataclass
class Frame:
    file: str
    line: int | None
    func: str
    code: str | None = None
    project: bool = False


@dataclass
class PyException:
    type: str
    message: str
    line_no: int
    relation: str | None = None  # "cause" | "context": how it links to the previous one
    frames: list[Frame] = field(default_factory=list)


@dataclass
class Match:
    family: str
    kind: str
    line_no: int
    line: str
    groups: dict[str, str]


@dataclass
class ParsedLog:
    recognized: bool
    family: str | None = None
    kind: str | None = None
    title: str | None = None
    exception_type: str | None = None
    message: str | None = None
    signature: str | None = None
    signature_key: str | None = None
    line_no: int | None = None
    line: str | None = None
    chain: list[PyException] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    engine: str | None = None
    engine_scores: dict[str, int] = field(default_factory=dict)
    component: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    matches: list[Match] = field(default_factory=list)
    secondary_signatures: list[str] = field(default_factory=list)
    code_lines: list[int] = field(default_factory=list)  # source lines printed under frames

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("code_lines")
        return d

    @property
    def search_text(self) -> str:
        """Words that identify this failure, for the lexical and semantic indexes."""
        parts = [self.signature or "", self.exception_type or "", self.message or ""]
        parts += [c.type + " " + c.message for c in self.chain[-3:]]
        parts += [f"{f.func} {f.file.rsplit('/', 1)[-1]}" for f in self.frames]
        return " ".join(p for p in parts if p)


class Patterns:
    """The compiled contents of ``patterns.yaml`` (or a user's file with the same layout)."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.prefixes = [re.compile(p) for p in data["line_prefixes"]]
        tb = data["traceback"]
        self.tb_header = re.compile(tb["header"])
        self.frame = re.compile(tb["frame"])
        self.chain_cause = tb["chain"]["cause"]
        self.chain_context = tb["chain"]["context"]
        self.exception_line = re.compile(tb["exception_line"])
        self.inline_exception = re.compile(tb["inline_exception"])
        self.generic = [re.compile(p) for p in data["generic_messages"]]
        self.families = []
        for fam in data["families"]:
            self.families.append(
                {
                    **fam,
                    "compiled": [re.compile(p) for p in fam["patterns"]],
                    # Literal keywords pick the candidate lines; the full patterns then run on
                    # those lines only (a leading ".*" over a whole log would be quadratic).
                    "keywords": re.compile(fam["keywords"]),
                    "followers": [re.compile(p) for p in fam.get("followers", [])],
                }
            )
        self.signal_aliases = [(re.compile(k), v) for k, v in data["signal_aliases"].items()]
        self.normalize_rules = [(re.compile(p), r) for p, r in data["normalize"]]
        self.versions = {k: [re.compile(p) for p in v] for k, v in data["versions"].items()}
        self.engines = {
            k: [(re.compile(p, re.M), int(w)) for p, w in v] for k, v in data["engines"].items()
        }
        self.project = re.compile("|".join(data["project_frames"]))
        self.components = [
            (name, re.compile("|".join(pats))) for name, pats in data["components"].items()
        ]
        self.log_markers = re.compile(data["log_markers"], re.M)


@lru_cache(maxsize=4)
def load_patterns(path: str | None = None) -> Patterns:
    if path is None:
        text = (resources.files("bugatlas.diagnose") / "patterns.yaml").read_text(encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    return Patterns(load_yaml(text))


# -- normalization ------------------------------------------------------------------------------
def normalize_message(message: str, patterns: Patterns | None = None) -> str:
    """Abstract paths, addresses, numbers, sizes, hex, UUIDs and model names out of a message."""
    p = patterns or load_patterns()
    out = message.strip().strip("`").strip()
    for rx, repl in p.normalize_rules:
        out = rx.sub(repl, out)
    if out.count("'") % 2 and out.endswith("'"):  # a quote the log's markdown left unbalanced
        out = out[:-1].rstrip(" .,;:")
    return out.strip()


def signature_key(signature: str) -> str:
    return hashlib.sha1(signature.lower().encode()).hexdigest()[:16]


def _first_sentences(message: str, limit: int = MAX_SIGNATURE_CHARS) -> str:
    message = message.strip()
    if len(message) <= limit:
        return message
    cut = message.rfind(". ", 0, limit)
    return message[: cut + 1] if cut > 40 else message[:limit]


# -- the parser -----------------------------------------------------------------------------------
def strip_prefixes(line: str, patterns: Patterns) -> tuple[str, str | None]:
    """Remove logger/container prefixes; return the line and the log level they carried."""
    level = None
    for _ in range(3):
        changed = False
        for rx in patterns.prefixes:
            m = rx.match(line)
            if m and m.end() > 0:
                lv = re.search(r"\b(ERROR|INFO|WARNING|WARN|DEBUG|CRITICAL)\b", m.group(0))
                if lv and level is None:
                    level = lv.group(1)
                line = line[m.end():]
                changed = True
        if not changed:
            break
    return line, level


def clip_log(text: str) -> tuple[str, int, int]:
    """The part of a log that is read, with ``\\n`` line ends: all of it up to MAX_LOG_CHARS, else
    its first 20,000 characters and its tail (errors end logs). Also returns how many lines
    of the clipped text come from the head and how many lines of the log were left out after
    them, so that line numbers can be given as in the log (:func:`log_line`)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) <= MAX_LOG_CHARS:
        return text, 0, 0
    head, tail = text[:20_000], text[-(MAX_LOG_CHARS - 20_001):]
    head_lines = head.count("\n") + 1
    return head + "\n" + tail, head_lines, text.count("\n", 0, len(text) - len(tail)) - head_lines


def log_line(line_no: int, head_lines: int, skipped: int) -> int:
    """A 0-based line number of the clipped text as the line number in the whole log."""
    return line_no + skipped if skipped and line_no >= head_lines else line_no


def parse_log(text: str, patterns: Patterns | None = None) -> ParsedLog:
    """Parse a log, traceback or issue text. Never raises on odd input; an unrecognized log
    comes back with ``recognized=False`` and whatever versions/engine hints it had."""
    p = patterns or load_patterns()
    text, _, _ = clip_log(text)
    raw_lines = text.split("\n")
    lines, quiet = [], set()
    for i, raw in enumerate(raw_lines):
        line, level = strip_prefixes(raw, p)
        line = _MARKDOWN.sub("", line.rstrip())  # **bold**, > quotes around pasted lines
        if line.lstrip().startswith("```"):
            line = ""
        lines.append(line)
        # Warnings and info lines can mention errors ("failed to allocate pinned memory") but
        # are not the failure; only lines at ERROR level or without a level are.
        if level in ("INFO", "DEBUG", "WARNING", "WARN") or line.lstrip().startswith(
            ("WARNING:", "warning:", "WARN:")
        ):
            quiet.add(i)
    clean = "\n".join(lines)
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)

    def line_of(offset: int) -> int:
        return bisect.bisect_right(starts, offset) - 1

    chain, code_lines, tb_lines = _parse_tracebacks(lines, p)
    out = ParsedLog(recognized=False, chain=chain, code_lines=sorted(code_lines))
    out.versions = _versions(clean, p)
    out.engine_scores = _engine_scores(clean, p)
    if out.engine_scores:
        best = max(out.engine_scores.items(), key=lambda kv: kv[1])
        out.engine = best[0] if best[0] != "transformers" or len(out.engine_scores) == 1 else None
        if out.engine is None:
            out.engine = max(
                ((k, v) for k, v in out.engine_scores.items() if k != "transformers"),
                key=lambda kv: kv[1],
            )[0]

    skip = code_lines | quiet
    matches: list[Match] = []
    for fam in p.families:
        candidates = sorted({line_of(m.start()) for m in fam["keywords"].finditer(clean)} - skip)
        found = 0
        for ln in candidates:
            line = lines[ln]
            for rx in fam["compiled"]:
                m = rx.search(line)
                if not m:
                    continue
                groups = {k: v for k, v in m.groupdict().items() if v}
                for follower in fam["followers"]:
                    for nxt in range(ln + 1, min(ln + 3, len(lines))):
                        fm = follower.match(lines[nxt])
                        if fm:
                            groups.update({k: v for k, v in fm.groupdict().items() if v})
                            break
                matches.append(Match(fam["id"], fam["kind"], ln, raw_lines[ln].strip(), groups))
                found += 1
                break
            if found >= 20:
                break
    # Exceptions printed without a traceback ("ValueError: ..." inside a log line).
    inline: list[PyException] = []
    for ln in sorted({line_of(m.start()) for m in _EXC_WORD.finditer(clean)} - skip - tb_lines):
        m = p.inline_exception.search(lines[ln])
        if m:
            inline.append(PyException(m.group("type"), m.group("msg") or "", ln))
            if len(inline) >= 50:
                break
    out.matches = matches
    _choose_primary(out, matches, chain, inline, lines, raw_lines, p)
    _frames_and_component(out, chain, clean, p)
    return out


def _parse_tracebacks(lines: list[str], p: Patterns) -> tuple[list[PyException], set[int], set[int]]:
    chain: list[PyException] = []
    code_lines: set[int] = set()
    tb_lines: set[int] = set()
    i, n = 0, len(lines)
    while i < n:
        if not p.tb_header.search(lines[i]):
            i += 1
            continue
        relation = None
        for back in range(i - 1, max(-1, i - 4), -1):
            prev = lines[back]
            if p.chain_cause in prev:
                relation = "cause"
                break
            if p.chain_context in prev:
                relation = "context"
                break
        header = i
        frames: list[Frame] = []
        i += 1
        misses = 0
        exc = None
        while i < n:
            line = lines[i]
            fm = p.frame.match(line)
            if fm:
                frames.append(
                    Frame(fm.group("file"), int(fm.group("line")), fm.group("func"),
                          project=bool(p.project.search(fm.group("file"))))
                )
                tb_lines.add(i)
                # The source line Python prints under a frame (and 3.11+ caret markers).
                j = i + 1
                while j < n and j < i + 4:
                    nxt = lines[j]
                    if p.frame.match(nxt) or not nxt.strip():
                        break
                    if nxt.startswith(("    ", "\t")) and not p.exception_line.match(nxt):
                        code_lines.add(j)
                        tb_lines.add(j)
                        if frames[-1].code is None and not set(nxt.strip()) <= set("^~ "):
                            frames[-1].code = nxt.strip()
                        j += 1
                        continue
                    break
                i = j
                misses = 0
                continue
            em = p.exception_line.match(line)
            if em and (frames or i == header + 1):
                exc = PyException(em.group("type"), (em.group("msg") or "").strip(), i, relation, frames)
                tb_lines.add(i)
                i += 1
                break
            if p.tb_header.search(line):
                break
            misses += 1
            if misses > 3:
                break
            i += 1
        if "most recent call first" in lines[header]:
            frames.reverse()
            if exc is not None:
                exc.frames = frames
        if exc is not None:
            chain.append(exc)
        elif frames:
            kind = "(thread dump)" if "most recent call first" in lines[header] else "(truncated traceback)"
            chain.append(PyException(kind, "", header, relation, frames))
    return chain, code_lines, tb_lines


def _versions(clean: str, p: Patterns) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, rxs in p.versions.items():
        for rx in rxs:
            m = rx.search(clean)
            if m:
                v = m.group("v")
                if name == "cuda" and re.fullmatch(r"1\d\d", v):  # +cu124 -> 12.4
                    v = f"{v[:-1]}.{v[-1]}"
                found[name] = v
                break
    return found


def _engine_scores(clean: str, p: Patterns) -> dict[str, int]:
    if len(clean) > 40_000:  # the head (start-up lines) and tail (the failure) name the engine
        clean = clean[:20_000] + "\n" + clean[-20_000:]
    scores: dict[str, int] = {}
    for engine, rxs in p.engines.items():
        total = 0
        for rx, weight in rxs:
            hits = sum(1 for _ in zip(rx.finditer(clean), range(50), strict=False))
            total += hits * weight
        if total:
            scores[engine] = total
    return scores


def _is_generic(message: str, p: Patterns) -> bool:
    return any(rx.search(message.strip()) for rx in p.generic)


def _short_type(t: str) -> str:
    return t.rsplit(".", 1)[-1]


def _canonical_signal(msg: str, p: Patterns) -> str:
    for rx, name in p.signal_aliases:
        if rx.fullmatch(msg.strip()):
            return name
    return msg


def _family_signature(fam: dict[str, Any], groups: dict[str, str], p: Patterns) -> tuple[str, str, str]:
    """(signature, exception type, message) of a family match."""
    g = dict(groups)
    etype = g.get("type") or fam["id"]
    msg = g.get("msg") or g.get("what") or g.get("cond") or ""
    if fam["id"] == "segfault":
        g["msg"] = _canonical_signal(msg, p)
        if msg.startswith(("Segmentation", "SIG", "signal", "exited", "Bus", "Illegal", "Float", "Abort")):
            msg = g["msg"]
    norm = {k: normalize_message(_first_sentences(v), p) for k, v in g.items()}
    norm.setdefault("type", _short_type(etype))
    norm["type"] = _short_type(norm["type"]) if fam["id"] not in ("llamacpp_alloc", "llamacpp_load") else norm["type"]
    for key in ("msg", "what", "cond", "file"):
        norm.setdefault(key, "")
    if "file" in g:
        norm["file"] = g["file"].replace("\\", "/").rsplit("/", 1)[-1]
    sig = fam["signature"].format(**norm)
    sig = re.sub(r"(?::\s*)+$", "", sig).strip()
    return sig[: MAX_SIGNATURE_CHARS + 40], etype, msg.strip()


def _choose_primary(
    out: ParsedLog, matches: list[Match], chain: list[PyException], inline: list[PyException],
    lines: list[str], raw_lines: list[str], p: Patterns,
) -> None:
    fam_by_id = {f["id"]: f for f in p.families}
    order = {f["id"]: i for i, f in enumerate(p.families)}
    sigs: list[str] = []
    ranked = sorted(matches, key=lambda m: (order[m.family], m.line_no))
    primary: Match | None = None
    for m in ranked:
        sig, _, msg = _family_signature(fam_by_id[m.family], m.groups, p)
        if msg and _is_generic(msg, p):
            continue
        if primary is None:
            primary = m
        if sig not in sigs:
            sigs.append(sig)
    py_excs = [e for e in chain if not e.type.startswith("(")] + inline
    py_sigs = []
    for e in py_excs:
        if _is_generic(e.message, p):
            continue
        s = f"{_short_type(e.type)}: {normalize_message(_first_sentences(e.message), p)}".rstrip(": ")
        py_sigs.append((e, s))
    if primary is not None:
        fam = fam_by_id[primary.family]
        sig, etype, msg = _family_signature(fam, primary.groups, p)
        out.family, out.kind, out.title = fam["id"], fam["kind"], fam["title"]
        out.exception_type, out.message = etype, msg or primary.line
        out.line_no, out.line = primary.line_no, primary.line
    elif py_sigs or py_excs:
        # The last specific exception: chained tracebacks end with the one the user saw; generic
        # "see above" wrappers were skipped.
        e, sig = py_sigs[-1] if py_sigs else (py_excs[-1], None)
        if sig is None:
            sig = f"{_short_type(e.type)}: {normalize_message(_first_sentences(e.message), p)}".rstrip(": ")
        out.family, out.kind, out.title = "python_exception", "python", "Python exception"
        out.exception_type, out.message = e.type, e.message
        out.line_no, out.line = e.line_no, raw_lines[e.line_no].strip()
    elif (tb := next((e for e in reversed(chain) if e.type == "(truncated traceback)" and e.frames), None)):
        # A traceback cut before its exception line (a pasted log's tail missing): the failing
        # frame and its source line still identify the failure.
        f = tb.frames[-1]
        code = normalize_message(f.code or "", p)
        sig = f"truncated traceback at {f.file.replace(chr(92), '/').rsplit('/', 1)[-1]}:{f.func}" + (f": {code}" if code else "")
        out.family, out.kind, out.title = "python_traceback", "python", "Python traceback (exception line missing)"
        out.exception_type = "AssertionError" if (f.code or "").startswith("assert ") else None
        out.message = f.code or ""
        out.line_no, out.line = tb.line_no, raw_lines[tb.line_no].strip()
    else:
        return
    out.recognized = True
    out.signature = sig
    out.signature_key = signature_key(sig)
    for _, s in py_sigs:
        if s not in sigs:
            sigs.append(s)
    out.secondary_signatures = [s for s in sigs if s != sig][:10]


def _frames_and_component(out: ParsedLog, chain: list[PyException], clean: str, p: Patterns) -> None:
    frames: list[Frame] = []
    if chain:
        # The traceback of the primary exception when it is a Python one, else the last one.
        tb = next((e for e in chain if e.line_no == out.line_no), None) or chain[-1]
        proj = [f for f in tb.frames if f.project][-5:]
        last = tb.frames[-3:]
        for f in proj + last:
            if f not in frames:
                frames.append(f)
        frames.sort(key=lambda f: tb.frames.index(f))
    out.frames = frames
    fam = next((f for f in p.families if f["id"] == out.family), None)
    if fam and fam.get("component") and fam.get("component_from") == "family":
        out.component = fam["component"]
        return
    for f in reversed([f for f in frames if f.project]):
        probe = f"{f.file} {f.func}"
        for name, rx in p.components:
            if rx.search(probe):
                out.component = name
                return
    if fam and fam.get("component"):
        out.component = fam["component"]
        return
    if out.recognized:
        best, best_n = None, 0
        for name, rx in p.components:
            n = sum(1 for _ in zip(rx.finditer(clean), range(20), strict=False))
            if n > best_n:
                best, best_n = name, n
        out.component = best


# -- pulling the log out of an issue body ---------------------------------------------------------
_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)
_DETAILS = re.compile(r"<details>(.*?)</details>", re.S | re.I)


def extract_log(body: str | None, patterns: Patterns | None = None) -> str:
    """The error-log part of an issue body: fenced blocks and <details> that carry a log marker,
    plus marker lines (with a little context) pasted into the prose outside them. Empty when
    the body has no log."""
    if not body:
        return ""
    p = patterns or load_patterns()
    blocks = [m.group(1) for m in _FENCE.finditer(body)]
    blocks += [m.group(1) for m in _DETAILS.finditer(body) if "```" not in m.group(1)]
    logs = [b for b in blocks if p.log_markers.search(b)]
    prose = _extract_marker_lines(_FENCE.sub("\n", body), p)
    return "\n".join([*logs, prose] if prose else logs)


def _extract_marker_lines(body: str, p: Patterns) -> str:
    lines = body.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    keep: set[int] = set()
    for m in p.log_markers.finditer(body):
        i = bisect.bisect_right(starts, m.start()) - 1
        if p.tb_header.search(lines[i]):
            keep.update(range(i, min(len(lines), i + 60)))
        else:
            keep.update(range(max(0, i - 1), min(len(lines), i + 2)))
    return "\n".join(lines[i] for i in sorted(keep))

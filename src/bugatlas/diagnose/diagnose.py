"""From an error log to: the parsed failure, the likely symptom and root cause, the most similar
known issues and how they were resolved, and the codebook's next steps. Fully offline."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from bugatlas.diagnose.index import SearchIndex, search_settings
from bugatlas.diagnose.parse import ParsedLog, clip_log, parse_log
from bugatlas.diagnose.predict import Prediction, predict
from bugatlas.errors import BadInputError
from bugatlas.store import Store

MAINTAINER_ROLES = ("OWNER", "MEMBER", "COLLABORATOR")


@dataclass
class SimilarIssue:
    repo: str
    number: int
    title: str | None
    state: str | None
    url: str | None
    score: float
    matched_by: dict[str, int]
    same_signature: bool
    signature: str | None
    closed_at: str | None = None
    resolution: dict[str, Any] = field(default_factory=dict)


@dataclass
class Diagnosis:
    taxonomy: str
    known_pattern: bool
    parsed: ParsedLog
    predictions: dict[str, Prediction]
    similar: list[SimilarIssue]
    next_steps: list[str]
    notes: list[str] = field(default_factory=list)
    command: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        parsed = self.parsed.to_dict()
        parsed.pop("matches", None)
        # Line numbers in the JSON are 1-based, like the evidence lines of the predictions.
        if parsed["line_no"] is not None:
            parsed["line_no"] += 1
        for exc in parsed.get("chain", []):
            exc["line_no"] += 1
            exc["frames"] = exc["frames"][-6:]  # the full chain is long; the tail is what matters
        return {
            "taxonomy": self.taxonomy,
            "known_pattern": self.known_pattern,
            "verdict": self.verdict,
            "parsed": parsed,
            "predictions": {k: v.to_dict() for k, v in self.predictions.items()},
            "similar": [asdict(s) for s in self.similar],
            "next_steps": self.next_steps,
            "notes": self.notes,
            **({"command": self.command} if self.command else {}),
        }

    @property
    def verdict(self) -> str:
        if not self.known_pattern:
            return "no known pattern: nothing in this log matches a known failure; see the nearest issues"
        rc = self.predictions.get("root_cause")
        sym = self.predictions.get("symptom")
        parts = []
        if self.parsed.recognized:
            parts.append(f"{self.parsed.title}: {self.parsed.signature}")
        if sym and sym.category:
            parts.append(f"symptom {sym.category} ({sym.confidence:.2f})")
        if rc and rc.category:
            parts.append(f"likely root cause {rc.category} ({rc.confidence:.2f})")
        elif rc is not None:
            parts.append("root cause: no known pattern")
        return "; ".join(parts)


def resolution(store: Store, repo: str, number: int, state: str | None) -> dict[str, Any]:
    """How a known issue was resolved, from what the store collected: fixing pull requests, the
    closing (last maintainer) comment, and a release named as the fix."""
    fixes = store.fixes_for(repo, number)
    comments = store.comments_for(repo, number)
    closing = None
    if comments:
        by_maint = [c for c in comments if (c.get("author_association") or "") in MAINTAINER_ROLES]
        closing = (by_maint or comments)[-1]
    rx = re.compile(search_settings()["fixed_version"])
    version = None
    for text in [*(f.get("title") or "" for f in fixes), (closing or {}).get("body") or ""]:
        m = rx.search(text)
        if m:
            version = m.group("v")
            break
    prs = [
        {"repo": f.get("repo"), "number": f.get("number"), "title": f.get("title"),
         "state": f.get("state"), "merged_at": f.get("merged_at"), "url": f.get("html_url"),
         "relation": f.get("relation")}
        for f in fixes if f.get("number") is not None
    ]  # fmt: skip
    out: dict[str, Any] = {"fixing_prs": prs, "fixed_version": version}
    if closing:
        body = (closing.get("body") or "").strip()
        out["closing_comment"] = {
            "author": closing.get("author"), "association": closing.get("author_association"),
            "created_at": closing.get("created_at"), "excerpt": body[:400] + ("…" if len(body) > 400 else ""),
        }  # fmt: skip
    closing_prs = [p for p in prs if p["merged_at"] and p["relation"] != "cross-reference"]
    if closing_prs:
        out["summary"] = "fixed by " + ", ".join(f"#{p['number']}" for p in closing_prs)
    elif state == "closed":
        out["summary"] = "closed" + (" (see closing comment)" if closing else "; no fix collected")
    else:
        out["summary"] = "open"
    return out


def diagnose(
    text: str,
    store: Store | None = None,
    *,
    taxonomy: str = "liu2025",
    k: int = 5,
    index: SearchIndex | None = None,
    exclude: tuple[int, ...] = (),
) -> Diagnosis:
    """Diagnose a log. ``store`` (with a built index) adds similar issues; without it the parse,
    the predictions and the next steps still work."""
    from bugatlas.diagnose.predict import get_codebook, number_as_in_log

    # parse, predictions and search read the same clipped text (a 50 MB log is not scanned
    # whole by every signal); line numbers are then given as in the whole log
    text, head_lines, skipped = clip_log(text)
    parsed = parse_log(text)
    cb = get_codebook(taxonomy)
    preds = predict(parsed, text, cb)
    notes: list[str] = []
    similar: list[SimilarIssue] = []
    if store is not None:
        index = index or SearchIndex(store)
        if not index.is_built():
            notes.append("the store has no search index yet: run `bugatlas index build` to list similar issues")
        else:
            if not index.is_current():
                notes.append("issues were added to the store since the index was built: run `bugatlas index build`")
            for hit in index.search(parsed, text, k=k, exclude=exclude):
                issue = store.get_issue(hit.repo, hit.number)
                similar.append(SimilarIssue(
                    hit.repo, hit.number, issue.title if issue else None, issue.state if issue else None,
                    issue.html_url if issue else None, hit.score, hit.channels, hit.same_signature,
                    hit.signature, issue.closed_at if issue else None,
                    resolution(store, hit.repo, hit.number, issue.state if issue else None),
                ))  # fmt: skip
    else:
        notes.append("no study store: similar issues need `bugatlas import` and `bugatlas index build`")
    number_as_in_log(parsed, preds, head_lines, skipped)
    known = parsed.recognized or any(p.category for p in preds.values())
    rc = preds.get("root_cause")
    steps = list(rc.next_steps) if rc and rc.category else []
    if not steps and known:
        sym = preds.get("symptom")
        steps = list(sym.next_steps) if sym and sym.category else []
    return Diagnosis(cb.name, known, parsed, preds, similar, steps, notes)


def capture_command(command: str, timeout: float = 600.0) -> tuple[str, dict[str, Any]]:
    """Run a command (no shell) and capture its combined output for diagnosis."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise BadInputError(f"--command: cannot split {command!r} ({exc})") from exc
    if not argv:
        raise BadInputError("--command: empty command")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, errors="replace")
    except FileNotFoundError as exc:
        raise BadInputError(f"--command: {argv[0]}: command not found") from exc
    except OSError as exc:  # not executable, a directory, not a program (exec format error)
        raise BadInputError(f"--command: {argv[0]}: cannot run it ({exc.strerror or exc})") from exc
    except subprocess.TimeoutExpired as exc:
        # TimeoutExpired carries bytes even in text mode, and None for a stream that said nothing
        parts = [p.decode(errors="replace") if isinstance(p, bytes) else p for p in (exc.stdout, exc.stderr) if p]
        return "\n".join(parts), {"argv": argv, "returncode": None, "timed_out": True}
    return proc.stdout + "\n" + proc.stderr, {"argv": argv, "returncode": proc.returncode, "timed_out": False}

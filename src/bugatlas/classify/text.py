"""Issue text as the classifiers see it: title and body only, split into zones.

Issue templates fill bodies with checklists and environment dumps (``collect_env`` output
names CUDA, NCCL and a dozen versions in every vLLM report), so a cue found there says
nothing about the failure. We drop those sections, keep the prose and the logs apart (a
traceback in a log is evidence of a crash; the word "crash" in prose is weaker), and keep the
title's template prefix (``[Performance]``, ``Compile bug:``) as a cue of its own, since the
reporter chose it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bugatlas.store.records import Issue

# "[Bug]: ", "[Feature Request] ", "Eval bug: ", "Misc. bug:" ... possibly several in a row.
_PREFIX = re.compile(
    r"^\s*((?:\[[^\]\n]{1,40}\]\s*:?\s*)+|(?:(?:eval|compile|misc\.?|build|bug|research|"
    r"feature request|refactor)\s*(?:bug)?\s*:\s*)+)",
    re.I,
)
_HEADER = re.compile(r"^\s{0,3}(?:#{1,6}\s+(.+?)\s*#*\s*$|\*\*([^*\n]{2,80})\*\*\s*:?\s*$)")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CHECKBOX = re.compile(r"^\s*[-*]\s*\[[ xX]\]\s")
_DETAILS = re.compile(r"</?(details|summary)[^>]*>", re.I)
# images and links carry no words about the failure, only noise for cues and the model
_MEDIA = re.compile(r"!\[[^\]]*\]\([^)]*\)|<img[^>]*>|https?://\S+", re.I)
# Sections of issue templates that describe the environment or the reporting process, not
# the failure.
_BOILERPLATE = re.compile(
    r"^(checklist|your current environment|environment|env|environment info(rmation)?|"
    r"system info(rmation)?|name and version|version|operating systems?|os|hardware|"
    r"ggml backends|which llama\.cpp modules.*|models?|before submitting.*|"
    r"prerequisites|feature description|motivation|possible implementation|"
    r"first bad commit|how would you like to use .*|describe alternatives.*|"
    r"additional context|related resources|contributing|"
    r"how you are installing .*|how did you install.*|your output of .*)$",
    re.I,
)
_LOGISH = re.compile(
    r"^\s*(Traceback|File \"|\s*at |[A-Z][A-Za-z]+(Error|Exception)\b|ERROR|WARNING|INFO|"
    r"DEBUG|\[rank\d|\(\w+ pid=|\d{4}-\d\d-\d\d[ T]\d\d:|llama_|ggml_|GGML_|load_tensors|"
    r"CUDA error|\S+\.(py|cpp|cu|h|c):\d+)"
)


@dataclass(frozen=True)
class Doc:
    """One issue's text split into zones (all lower-cased copies are made by the users)."""

    title: str
    prefix: str
    prose: str
    log: str

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.prose}\n{self.log}"

    def zone(self, name: str) -> str:
        if name == "title":
            return self.title
        if name == "prose":
            return f"{self.title}\n{self.prose}"
        if name == "log":
            return self.log
        if name == "prefix":
            return self.prefix
        if name == "body":
            return f"{self.prose}\n{self.log}"
        return self.text


def split_title(title: str | None) -> tuple[str, str]:
    """(template prefix, title without it)."""
    title = (title or "").strip()
    m = _PREFIX.match(title)
    if not m:
        return "", title
    rest = title[m.end():].strip()
    if not rest:  # the whole title was a bracket: keep it as the title
        return "", title
    return m.group(1).strip(), rest


def strip_prefix(title: str | None) -> str:
    return split_title(title)[1]


def make_doc(title: str | None, body: str | None, *, max_chars: int = 20000) -> Doc:
    prefix, clean_title = split_title(title)
    body = _HTML_COMMENT.sub("", (body or "")[:max_chars])
    body = _MEDIA.sub(" ", _DETAILS.sub("", body))
    prose: list[str] = []
    log: list[str] = []
    in_code = False
    skip = False
    for line in body.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            if not skip:
                log.append(line)
            continue
        m = _HEADER.match(line)
        if m:
            header = (m.group(1) or m.group(2) or "").strip().rstrip(":?").strip()
            skip = bool(_BOILERPLATE.match(header))
            continue
        if skip or _CHECKBOX.match(line):
            continue
        # Unfenced pasted logs are common: route log-looking lines to the log zone.
        (log if _LOGISH.match(line) else prose).append(line)
    return Doc(title=clean_title, prefix=prefix, prose="\n".join(prose).strip(),
               log="\n".join(log).strip())


def issue_doc(issue: Issue) -> Doc:
    return make_doc(issue.title, issue.body)


def model_text(doc: Doc, *, log_chars: int = 1500) -> str:
    """The text the statistical model sees: title twice (it is the densest signal), prefix,
    prose, and the head and tail of the log (where errors are)."""
    log = doc.log
    if len(log) > 2 * log_chars:
        log = log[:log_chars] + "\n" + log[-log_chars:]
    return f"{doc.prefix} {doc.title}\n{doc.title}\n{doc.prose}\n{log}"

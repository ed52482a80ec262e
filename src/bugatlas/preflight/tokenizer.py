"""Tokenizer and chat-template checks: special tokens defined, the chat template renders a
conversation (in a Jinja sandbox configured as Hugging Face transformers does), special tokens
round-trip through encode/decode (the ``tokenizers`` library), and generation stops on the
template's end-of-turn token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bugatlas.preflight.context import Context, check
from bugatlas.preflight.findings import Finding

REPLY_MARK = "PREFLIGHT_REPLY_7f3a"
SAMPLE = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]
# Tokens llama.cpp treats as end-of-generation when they are in the vocabulary (llama-vocab.cpp).
LLAMA_CPP_EOG_TEXTS = (
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
    "<|end_of_text|>", "<｜end▁of▁sentence｜>", "</s>", "<|return|>", "<|call|>",
)  # fmt: skip


def _content(token: Any) -> str | None:
    if token is None:
        return None
    if isinstance(token, dict):
        return token.get("content")
    return str(token)


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, list):
        return [int(v) for v in value if v is not None]
    return [int(value)]


@dataclass
class TokenizerInfo:
    source: str
    bos: str | None = None
    eos: str | None = None
    pad: str | None = None
    add_bos: bool | None = None
    chat_template: str | None = None
    template_source: str | None = None
    stop_ids: dict[int, str] = field(default_factory=dict)     # id -> where it is declared
    special: dict[str, int] = field(default_factory=dict)      # special token text -> id
    vocab: dict[str, int] | None = None                        # GGUF token list
    tokenizer: Any = None                                      # tokenizers.Tokenizer
    load_error: str | None = None
    extra_tokens: dict[str, str] = field(default_factory=dict)  # other *_token entries

    def token_id(self, text: str | None) -> int | None:
        if text is None:
            return None
        if text in self.special:
            return self.special[text]
        if self.tokenizer is not None:
            return self.tokenizer.token_to_id(text)
        if self.vocab is not None:
            return self.vocab.get(text)
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _pick_template(value: Any) -> str | None:
    if isinstance(value, list):  # named templates: [{name: default, template: ...}, ...]
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        return named.get("default") or next(iter(named.values()), None)
    return value if isinstance(value, str) else None


def load_hf(directory: Path) -> TokenizerInfo:
    info = TokenizerInfo(source=str(directory))
    tc = _read_json(directory / "tokenizer_config.json")
    stm = _read_json(directory / "special_tokens_map.json")
    for key in ("bos_token", "eos_token", "pad_token"):
        value = _content(tc.get(key)) or _content(stm.get(key))
        setattr(info, key.removesuffix("_token"), value or None)
    for key in ("unk_token", "sep_token", "cls_token", "mask_token"):
        if _content(tc.get(key)):
            info.extra_tokens[key] = _content(tc.get(key))  # type: ignore[assignment]
    info.add_bos = tc.get("add_bos_token")
    for name, src in (("chat_template.jinja", "chat_template.jinja"),):
        if (directory / name).exists():
            info.chat_template, info.template_source = (directory / name).read_text(encoding="utf-8"), src
    if info.chat_template is None and (directory / "chat_template.json").exists():
        info.chat_template = _pick_template(_read_json(directory / "chat_template.json").get("chat_template"))
        info.template_source = "chat_template.json" if info.chat_template else None
    if info.chat_template is None and tc.get("chat_template"):
        info.chat_template, info.template_source = _pick_template(tc["chat_template"]), "tokenizer_config.json"
    for tid, tok in (tc.get("added_tokens_decoder") or {}).items():
        if isinstance(tok, dict) and tok.get("special"):
            info.special[tok["content"]] = int(tid)
    tj = directory / "tokenizer.json"
    if tj.exists():
        try:
            from tokenizers import Tokenizer

            info.tokenizer = Tokenizer.from_file(str(tj))
            for tok in _read_json(tj).get("added_tokens") or []:
                if tok.get("special"):
                    info.special[tok["content"]] = int(tok["id"])
        except Exception as exc:  # noqa: BLE001 - the tokenizers library raises plain Exceptions
            info.load_error = f"tokenizer.json does not load ({exc})"
    gen = _read_json(directory / "generation_config.json")
    cfg = _read_json(directory / "config.json")
    for i in _ids(gen.get("eos_token_id")):
        info.stop_ids.setdefault(i, "generation_config.json eos_token_id")
    if not gen.get("eos_token_id"):
        for i in _ids(cfg.get("eos_token_id")):
            info.stop_ids.setdefault(i, "config.json eos_token_id")
    eos_id = info.token_id(info.eos)
    if eos_id is not None:
        info.stop_ids.setdefault(eos_id, "tokenizer eos_token")
    return info


def load_gguf_tokenizer(fields: dict[str, Any], path: Path) -> TokenizerInfo:
    info = TokenizerInfo(source=str(path))
    tokens = list(fields.get("tokenizer.ggml.tokens") or [])
    info.vocab = {t: i for i, t in enumerate(tokens)}

    def text(key: str) -> str | None:
        i = fields.get(key)
        return tokens[int(i)] if i is not None and 0 <= int(i) < len(tokens) else None

    info.bos, info.eos = text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id")
    info.pad = text("tokenizer.ggml.padding_token_id")
    info.add_bos = fields.get("tokenizer.ggml.add_bos_token")
    info.chat_template = fields.get("tokenizer.chat_template")
    info.template_source = "tokenizer.chat_template" if info.chat_template else None
    types = list(fields.get("tokenizer.ggml.token_type") or [])
    for i, t in enumerate(tokens):
        if i < len(types) and types[i] == 3:  # CONTROL
            info.special[t] = i
    for key in ("eos", "eot", "eom"):
        i = fields.get(f"tokenizer.ggml.{key}_token_id")
        if i is not None:
            info.stop_ids.setdefault(int(i), f"tokenizer.ggml.{key}_token_id")
    for t in LLAMA_CPP_EOG_TEXTS:  # llama.cpp adds these to its end-of-generation set itself
        if t in info.vocab:
            info.stop_ids.setdefault(info.vocab[t], "llama.cpp end-of-generation token")
    return info


def tokenizer_info(ctx: Context) -> TokenizerInfo | None:
    if "tokenizer_info" in ctx.cache:
        return ctx.cache["tokenizer_info"]
    info: TokenizerInfo | None = None
    tok_dir = ctx.launch.get("tokenizer")
    if tok_dir and Path(tok_dir).is_dir():
        info = load_hf(Path(tok_dir))
    elif ctx.model_dir is not None:
        info = load_hf(ctx.model_dir)
    elif ctx.gguf_path is not None and ctx.cache.get("gguf") and not ctx.cache["gguf"].error:
        info = load_gguf_tokenizer(ctx.cache["gguf"].fields, ctx.gguf_path)
    if info is not None:
        override = ctx.launch.get("chat_template_file") or ctx.launch.get("chat_template")
        if override:
            path = Path(str(override))
            if path.is_file():
                info.chat_template, info.template_source = path.read_text(encoding="utf-8"), f"{path} (launch flag)"
            elif "{%" in str(override) or "{{" in str(override):
                info.chat_template, info.template_source = str(override), "inline template (launch flag)"
            else:
                info.template_source = f"built-in template {override!r} (launch flag)"
                info.chat_template = None
                ctx.cache["builtin_template"] = str(override)
    ctx.cache["tokenizer_info"] = info
    return info


# -- rendering ---------------------------------------------------------------------------------------
class TemplateFailure(Exception):
    pass


def render(template: str, messages: list[dict[str, str]], info: TokenizerInfo, *, add_generation_prompt: bool) -> str:
    """Render a chat template the way transformers' apply_chat_template does."""
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateFailure(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        compiled = env.from_string(template)
        return compiled.render(
            messages=messages, add_generation_prompt=add_generation_prompt, tools=None, documents=None,
            bos_token=info.bos or "", eos_token=info.eos or "", pad_token=info.pad or "",
            **{k: v for k, v in info.extra_tokens.items()},
        )  # fmt: skip
    except TemplateFailure as exc:
        raise TemplateFailure(f"the template raised: {exc}") from exc
    except TemplateError as exc:
        raise TemplateFailure(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - templates can fail with any Python error
        raise TemplateFailure(f"{type(exc).__name__}: {exc}") from exc


# -- checks ----------------------------------------------------------------------------------------
def _no_tokenizer(ctx: Context, check_id: str) -> list[Finding]:
    return [ctx.finding(check_id, "skip", "no local tokenizer (model is not a local directory or GGUF file)")]


@check("tok.special_tokens")
def check_special_tokens(ctx: Context) -> list[Finding]:
    info = tokenizer_info(ctx)
    if info is None:
        return _no_tokenizer(ctx, "tok.special_tokens")
    if info.load_error:
        return [ctx.finding("tok.special_tokens", "block", info.load_error,
                            why="The engine cannot build the tokenizer: start-up fails.",
                            fix="Re-download tokenizer.json, or upgrade `tokenizers`/`transformers` if it was saved by a newer version.")]  # fmt: skip
    out = []
    numbers = {"bos": info.bos, "eos": info.eos, "pad": info.pad, "stop_ids": sorted(info.stop_ids)}
    eos_id = info.token_id(info.eos)
    if info.eos is None and not info.stop_ids:
        out.append(ctx.finding(
            "tok.special_tokens", "block", "no EOS token: tokenizer_config.json, special_tokens_map.json and generation_config.json define none",
            numbers=numbers,
            why="Generation has nothing to stop on: every request runs to max_tokens and the model "
                "keeps writing past its answer (often the next user turn).",
            fix="Set eos_token in tokenizer_config.json (and eos_token_id in generation_config.json) to the model's end token, e.g. <|eot_id|> or <|im_end|>.",
        ))  # fmt: skip
    elif info.eos is not None and eos_id is None and (info.tokenizer is not None or info.vocab is not None):
        out.append(ctx.finding(
            "tok.special_tokens", "block", f"EOS token {info.eos!r} is not in the vocabulary",
            numbers=numbers,
            why="The EOS id cannot be resolved: the tokenizer fails to load or stopping never triggers.",
            fix="Fix eos_token in tokenizer_config.json to a token that exists in tokenizer.json.",
        ))  # fmt: skip
    if info.bos is None and info.add_bos:
        out.append(ctx.finding(
            "tok.special_tokens", "warn", "add_bos_token is true but no BOS token is defined",
            numbers=numbers,
            why="Prompts are encoded without the BOS the model was trained with: outputs degrade.",
            fix="Set bos_token in tokenizer_config.json.",
        ))  # fmt: skip
    if out:
        return out
    notes = [] if info.pad else ["no pad token (engines do not need one; batched transformers.generate does)"]
    return [ctx.finding("tok.special_tokens", "pass",
                        f"BOS {info.bos!r}, EOS {info.eos!r} (id {eos_id}), pad {info.pad!r}" + (f"; {notes[0]}" if notes else ""),
                        numbers=numbers)]  # fmt: skip


@check("tok.chat_template")
def check_chat_template(ctx: Context) -> list[Finding]:
    info = tokenizer_info(ctx)
    if info is None:
        return _no_tokenizer(ctx, "tok.chat_template")
    if ctx.cache.get("builtin_template"):
        return [ctx.finding("tok.chat_template", "pass", f"engine's built-in template {ctx.cache['builtin_template']!r} (not rendered here)")]
    if not info.chat_template:
        return [ctx.finding(
            "tok.chat_template", "warn", "no chat template (tokenizer_config.json, chat_template.jinja and the launch flags define none)",
            why="/v1/chat/completions fails ('As of transformers v4.44, default chat template is no "
                "longer allowed') or a generic template formats prompts the model was not trained on.",
            fix="Pass --chat-template FILE with the model's template (base models: use /v1/completions).",
        )]  # fmt: skip
    try:
        text = render(info.chat_template, SAMPLE, info, add_generation_prompt=True)
    except TemplateFailure as exc:
        return [ctx.finding(
            "tok.chat_template", "block", f"chat template from {info.template_source} does not render a user/assistant/user conversation: {exc}",
            numbers={"template_source": info.template_source},
            why="Every chat request fails with a template error (HTTP 400/500) before reaching the model.",
            fix="Fix the Jinja template (test with `tokenizer.apply_chat_template(messages)`), or pass a working one with --chat-template.",
        )]  # fmt: skip
    ctx.cache["rendered"] = text
    if not text.strip():
        return [ctx.finding("tok.chat_template", "block", "chat template renders an empty prompt",
                            why="The model receives no input.", fix="Fix the chat template.")]  # fmt: skip
    missing = [m["content"] for m in SAMPLE if m["content"] not in text]
    if missing:
        return [ctx.finding(
            "tok.chat_template", "warn", f"rendered prompt drops message content ({missing[0]!r})",
            numbers={"rendered_chars": len(text)},
            why="The model never sees part of the conversation.", fix="Check the template's message loop.",
        )]  # fmt: skip
    system_note = ""
    try:
        render(info.chat_template, [{"role": "system", "content": "Be brief."}, *SAMPLE], info, add_generation_prompt=True)
    except TemplateFailure as exc:
        system_note = f"; rejects a system message ({exc})"
    return [ctx.finding("tok.chat_template", "pass",
                        f"template from {info.template_source} renders a 3-turn conversation ({len(text)} chars){system_note}",
                        numbers={"rendered_chars": len(text), "template_source": info.template_source})]  # fmt: skip


@check("tok.roundtrip")
def check_roundtrip(ctx: Context) -> list[Finding]:
    info = tokenizer_info(ctx)
    if info is None:
        return _no_tokenizer(ctx, "tok.roundtrip")
    if info.tokenizer is None:
        return [ctx.finding("tok.roundtrip", "skip", "no tokenizer.json to encode with (sentencepiece-only or GGUF vocabulary)")]
    tok = info.tokenizer
    bad = []
    specials = dict(info.special)
    for name in (info.bos, info.eos, info.pad):
        if name and name not in specials and tok.token_to_id(name) is not None:
            specials[name] = tok.token_to_id(name)
    for text, tid in sorted(specials.items(), key=lambda kv: kv[1]):
        ids = tok.encode(text, add_special_tokens=False).ids
        back = tok.decode([tid], skip_special_tokens=False)
        if ids != [tid] or back != text:
            bad.append({"token": text, "id": tid, "encodes_to": ids[:8], "decodes_to": back})
    rendered = ctx.cache.get("rendered")
    if rendered:
        enc = tok.encode(rendered, add_special_tokens=False)
        for text, tid in specials.items():
            if text in rendered and tid not in enc.ids and not any(b["token"] == text for b in bad):
                bad.append({"token": text, "id": tid, "encodes_to": "split inside the rendered prompt", "decodes_to": None})
    numbers = {"special_tokens": len(specials), "failures": bad[:10]}
    if bad:
        first = bad[0]
        return [ctx.finding(
            "tok.roundtrip", "warn",
            f"{len(bad)} special token(s) do not round-trip: {first['token']!r} (id {first['id']}) encodes to {first['encodes_to']}",
            numbers=numbers,
            why="The chat template's control tokens reach the model as plain text pieces: the model "
                "does not see turn boundaries and answers poorly or never stops.",
            fix="Mark these tokens as special added tokens in tokenizer.json (added_tokens with special: true).",
        )]  # fmt: skip
    return [ctx.finding("tok.roundtrip", "pass", f"{len(specials)} special tokens encode to their own id and decode back", numbers=numbers)]


def end_of_turn(info: TokenizerInfo) -> tuple[str | None, str]:
    """The token the chat template closes an assistant turn with, and the text after the reply."""
    text = render(info.chat_template or "", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": REPLY_MARK}],
                  info, add_generation_prompt=False)  # fmt: skip
    at = text.find(REPLY_MARK)
    if at < 0:
        return None, ""
    suffix = text[at + len(REPLY_MARK):]
    stripped = suffix.lstrip()
    candidates = sorted(set(info.special) | {t for t in (info.eos,) if t}, key=len, reverse=True)
    for token in candidates:
        if stripped.startswith(token):
            return token, suffix
    return None, suffix


@check("tok.stop")
def check_stop(ctx: Context) -> list[Finding]:
    info = tokenizer_info(ctx)
    if info is None:
        return _no_tokenizer(ctx, "tok.stop")
    if not info.chat_template:
        return [ctx.finding("tok.stop", "skip", "no chat template to take the end-of-turn token from")]
    try:
        token, suffix = end_of_turn(info)
    except Exception as exc:  # noqa: BLE001 - a template failing here is reported by tok.chat_template
        return [ctx.finding("tok.stop", "skip", f"template does not render a reply ({exc})")]
    stop = {i: where for i, where in info.stop_ids.items()}
    numbers = {"end_of_turn": token, "stop_ids": {str(k): v for k, v in stop.items()}}
    if token is None:
        if not suffix.strip():
            return [ctx.finding(
                "tok.stop", "warn", "the chat template adds nothing after an assistant reply (no end-of-turn token)",
                numbers=numbers,
                why="The model was trained to end turns with a token the template does not show; if it "
                    "is not EOS, generation runs on into a new turn.",
                fix="Check that the template closes assistant turns with the model's end token.",
            )]  # fmt: skip
        return [ctx.finding("tok.stop", "pass", f"assistant turns end with plain text {suffix.strip()[:20]!r}", numbers=numbers)]
    tid = info.token_id(token)
    numbers["end_of_turn_id"] = tid
    if tid is not None and tid in stop:
        return [ctx.finding("tok.stop", "pass", f"end-of-turn {token!r} (id {tid}) is a stop token ({stop[tid]})", numbers=numbers)]
    declared = ", ".join(f"{i} ({w})" for i, w in stop.items()) or "none"
    return [ctx.finding(
        "tok.stop", "block",
        f"the template ends assistant turns with {token!r} (id {tid}) but generation stops only on: {declared}",
        numbers=numbers,
        why="The model emits the end-of-turn token and keeps going: replies run to max_tokens, "
            f"show {token!r} in the text and continue with an invented next turn.",
        fix=f"Add {tid} to eos_token_id in generation_config.json (a list is allowed), or set "
            f"eos_token to {token!r} in tokenizer_config.json; per request, pass stop_token_ids=[{tid}].",
    )]  # fmt: skip

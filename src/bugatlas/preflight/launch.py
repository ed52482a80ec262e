"""Parse an engine's launch command (or a YAML deployment description) without running it.

Flag names and aliases are data (``data/engines.yaml``), so a new engine flag is a YAML line.
The result is a :class:`Launch`: the engine, the model, the settings given explicitly (under
canonical names such as ``tensor_parallel_size``) and the engine's defaults for the rest.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml
from bugatlas.preflight._data import load

_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^(.*/)?python(\d+(\.\d+)?)?$")
_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}


@dataclass
class Launch:
    """A parsed launch configuration."""

    engine: str                                   # key in engines.yaml: vllm | sglang | llama.cpp
    model: str | None
    settings: dict[str, Any] = field(default_factory=dict)   # explicit, canonical names
    env: dict[str, str] = field(default_factory=dict)        # VAR=value before the command
    unknown_flags: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    source: str = "command line"
    interpreter: str | None = None                # python the command starts, if it names one

    @property
    def spec(self) -> dict[str, Any]:
        return load("engines")[self.engine]

    @property
    def title(self) -> str:
        return self.spec["title"]

    def get(self, key: str, default: Any = None) -> Any:
        """The explicit setting, else the engine's default, else ``default``."""
        if key in self.settings:
            return self.settings[key]
        return self.spec.get("defaults", {}).get(key, default)

    def is_set(self, key: str) -> bool:
        return key in self.settings

    def engine_interpreter(self) -> str | None:
        """The Python that will run the engine: the one the command names, else the one in the
        shebang of the engine's console script (``vllm``) found on PATH."""
        import shutil

        if self.interpreter:
            return shutil.which(self.interpreter) or self.interpreter
        script = shutil.which(self.argv[0]) if self.argv else None
        if not script or self.engine == "llama.cpp":
            return None
        try:
            with open(script, "rb") as fh:
                first = fh.readline(512).decode("utf-8", "replace").strip()
        except OSError:
            return None
        if first.startswith("#!") and "python" in first:
            return first[2:].strip().split()[0]
        return None

    def to_dict(self) -> dict[str, Any]:
        defaults = {k: v for k, v in self.spec.get("defaults", {}).items() if k not in self.settings}
        return {
            "engine": self.engine, "model": self.model, "settings": self.settings,
            "defaults_used": defaults, "env": self.env, "unknown_flags": self.unknown_flags,
            "source": self.source,
        }  # fmt: skip


def engines() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in load("engines").items() if isinstance(v, dict) and "flags" in v}


def parse_tokens(value: str) -> int:
    """An integer token count; engines accept 131072, 128k (×1000) and 128K (×1024)."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", text)
    if not match:
        raise ValueError(f"not a token count: {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    scale = {"": 1, "k": 1000, "K": 1024, "m": 10**6, "M": 1024**2, "g": 10**9, "G": 1024**3}[unit]
    return int(number * scale)


def _convert(value: Any, kind: str, flag: str) -> Any:
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "tokens":
            return parse_tokens(value)
        if kind == "tokens_or_off":  # -1 switches the limit off (SGLang's --chunked-prefill-size)
            return -1 if str(value).strip() == "-1" else parse_tokens(value)
        if kind == "posint":  # a parallel size: the engines refuse 0 and negative sizes
            if int(value) < 1:
                raise ValueError(value)
            return int(value)
        if kind in ("bool", "optbool"):
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in _TRUE or text == "auto":
                return text if text == "auto" else True
            if text in _FALSE:
                return False
            raise ValueError(value)
        return str(value)
    except ValueError:
        shown = {"posint": "a positive int", "tokens_or_off": "tokens (or -1)"}.get(kind, kind)
        raise BadInputError(f"launch command: {flag} expects {shown}, got {value!r}") from None


def _flag_index(engine: str) -> dict[str, tuple[str, str]]:
    """Flag spelling (both --a-b and --a_b) -> (canonical name, type)."""
    index: dict[str, tuple[str, str]] = {}
    for key, spec in engines()[engine]["flags"].items():
        for name in spec["names"]:
            index[name] = (key, spec["type"])
            if name.startswith("--"):
                index[name.replace("_", "-")] = (key, spec["type"])
                index["--" + name[2:].replace("-", "_")] = (key, spec["type"])
    return index


def detect_engine(argv: list[str]) -> tuple[str, int]:
    """Which engine a command starts and where its own arguments begin."""
    for name, spec in engines().items():
        for prefix in spec["launchers"]:
            n = len(prefix)
            head = argv[:n]
            if head and Path(head[0]).name == Path(prefix[0]).name and head[1:] == prefix[1:]:
                return name, n
    raise BadInputError(
        f"launch command: cannot tell the engine from {' '.join(argv[:3])!r} "
        f"(known: vllm serve …, python -m sglang.launch_server …, llama-server …)"
    )


def parse_command(command: str | list[str], *, source: str = "command line") -> Launch:
    """Parse ``vllm serve MODEL --flag …``, ``python -m sglang.launch_server …`` or
    ``llama-server -m model.gguf …`` (leading ``VAR=value`` assignments are kept as env)."""
    try:
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    except ValueError as exc:  # an unclosed quote
        raise BadInputError(f"{source}: launch command: cannot split it like a shell ({exc})") from None
    env: dict[str, str] = {}
    while argv and (argv[0] == "env" or _ENV_ASSIGN.match(argv[0])):
        token = argv.pop(0)
        if token != "env":
            key, _, value = token.partition("=")
            env[key] = value
    interpreter = None
    while argv and (_PYTHON.match(argv[0]) or argv[0] in ("uv", "run", "exec")):
        token = argv.pop(0)
        if _PYTHON.match(token):
            interpreter = token
    if not argv:
        raise BadInputError("launch command: empty (give it after --, e.g. -- vllm serve MODEL)")
    engine, start = detect_engine(argv)
    launch = Launch(engine=engine, model=None, env=env, argv=list(argv), source=source, interpreter=interpreter)
    index = _flag_index(engine)
    positional_key = engines()[engine].get("positional")
    rest = argv[start:]
    i = 0
    while i < len(rest):
        token = rest[i]
        i += 1
        if not token.startswith("-") or token == "-":
            if positional_key and positional_key not in launch.settings:
                launch.settings[positional_key] = token
            else:
                launch.unknown_flags.append(token)
            continue
        name, eq, inline = token.partition("=")
        known = index.get(name)
        if known is None:
            launch.unknown_flags.append(name)
            # An unknown flag's value (if any) must not be read as the positional model.
            if not eq and i < len(rest) and not rest[i].startswith("-"):
                i += 1
            continue
        key, kind = known
        if kind == "bool":
            value: Any = _convert(inline, kind, name) if eq else True
        elif kind == "optbool":
            if eq:
                value = _convert(inline, kind, name)
            elif i < len(rest) and rest[i].lower() in _TRUE | _FALSE | {"auto"}:
                value = _convert(rest[i], kind, name)
                i += 1
            else:
                value = True
        else:
            if eq:
                raw = inline
            elif i < len(rest):
                raw = rest[i]
                i += 1
            else:
                raise BadInputError(f"launch command: {name} needs a value")
            value = _convert(raw, kind, name)
        launch.settings[key] = value
    if "config_file" in launch.settings:
        _merge_engine_config(launch, Path(launch.settings["config_file"]))
    launch.model = launch.settings.get("model") or launch.settings.get("hf_repo")
    return launch


def _merge_engine_config(launch: Launch, path: Path) -> None:
    """vLLM's ``--config FILE``: YAML of flag names; the command line wins over the file."""
    if not path.exists():
        raise BadInputError(f"{path}: --config file not found")
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read the --config file ({' '.join(str(exc).split())})") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a mapping of flag names to values")
    for key, value in settings_from_mapping(launch.engine, data, where=str(path), unknown=launch.unknown_flags).items():
        launch.settings.setdefault(key, value)


def settings_from_mapping(engine: str, data: dict[str, Any], *, where: str,
                          unknown: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Settings given as a mapping: flag names (``max-model-len``, ``--tp``) or canonical
    names (``max_model_len``). A name not in the flag table is appended to ``unknown`` as
    ``--name`` (reported like an unknown flag of a command line), or refused without it."""
    index = _flag_index(engine)
    flags = engines()[engine]["flags"]
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        if key in flags:
            canonical, kind = key, flags[key]["type"]
        else:
            name = key if key.startswith("-") else ("--" + key.replace("_", "-"))
            found = index.get(name) or index.get("-" + key)
            if found is None:
                if unknown is None:
                    raise BadInputError(f"{where}: unknown {engine} setting {key!r}")
                unknown.append(name if key.startswith("-") else "--" + key)
                continue
            canonical, kind = found
        out[canonical] = _convert(value, kind, key)
    return out


def deployment_from_mapping(doc: dict[str, Any], *, where: str) -> Launch:
    """One deployment: ``command`` (string or list), or ``engine`` + ``model`` + ``args``."""
    if not isinstance(doc, dict):
        raise BadInputError(f"{where}: a deployment is a YAML mapping")
    if "command" in doc and not isinstance(doc["command"], (str, list)):
        raise BadInputError(f"{where}: command must be a string or a list of arguments")
    for key in ("args", "env"):
        if not isinstance(doc.get(key) or {}, dict):
            raise BadInputError(f"{where}: {key} must be a mapping ({'flag' if key == 'args' else 'VAR'}: value)")
    if doc.get("model_config") is not None and not isinstance(doc["model_config"], str):
        raise BadInputError(f"{where}: model_config must be a known shape name or a config.json path")
    if "command" in doc:
        launch = parse_command(doc["command"], source=where)
        if "args" in doc:
            launch.settings.update(settings_from_mapping(launch.engine, doc["args"] or {}, where=where,
                                                         unknown=launch.unknown_flags))  # fmt: skip
    else:
        engine = str(doc.get("engine", "")).lower().replace("llama-server", "llama.cpp")
        if engine not in engines():
            raise BadInputError(f"{where}: give `command:` or `engine:` (one of {', '.join(engines())})")
        launch = Launch(engine=engine, model=None, source=where)
        launch.settings.update(settings_from_mapping(engine, doc.get("args") or {}, where=where,
                                                     unknown=launch.unknown_flags))  # fmt: skip
        if doc.get("model"):
            launch.settings["model"] = str(doc["model"])
    launch.env.update({str(k): str(v) for k, v in (doc.get("env") or {}).items()})
    launch.model = launch.settings.get("model") or launch.settings.get("hf_repo")
    return launch


def _read_yaml(path: Path) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read deployment description ({' '.join(str(exc).split())})") from exc


def load_deployment(path: str | os.PathLike[str]) -> tuple[Launch, dict[str, Any]]:
    """A YAML deployment description. Returns the launch and the rest of the document
    (``machine``, ``model_config``) for the caller.

    ```yaml
    command: vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192
    # or: engine: vllm, model: /models/llama, args: {tensor-parallel-size: 2}
    model_config: llama-3.1-8b     # optional: a known shape or a config.json path
    machine: {gpus: [{name: L4, memory_gib: 24, compute_capability: "8.9"}]}  # optional
    ```
    """
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise BadInputError(f"{path}: a deployment description is a YAML mapping")
    if "deployments" in doc:
        raise BadInputError(f"{path}: holds several deployments; use load_deployments")
    return deployment_from_mapping(doc, where=str(path)), doc


def load_deployments(path: str | os.PathLike[str]) -> list[tuple[str, Launch, dict[str, Any]]]:
    """One or several deployments from a YAML file, as (name, launch, settings) where settings
    holds the deployment's ``machine`` and ``model_config`` (falling back to the file's own).

    ```yaml
    machine: {gpus: [{name: L4, memory_gib: 24, compute_capability: "8.9", count: 2}]}
    deployments:
      - {name: chat, command: "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 16384"}
      - {name: code, command: "vllm serve Qwen/Qwen2.5-7B-Instruct -tp 2", machine: {...}}
    ```
    """
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise BadInputError(f"{path}: a deployment description is a YAML mapping")
    items = doc.get("deployments")
    if items is None:
        return [(doc.get("name") or path.stem, deployment_from_mapping(doc, where=str(path)), doc)]
    if not isinstance(items, list) or not items:
        raise BadInputError(f"{path}: `deployments` must be a non-empty list")
    out = []
    for n, item in enumerate(items):
        where = f"{path}: deployments[{n}]"
        if not isinstance(item, dict):
            raise BadInputError(f"{where}: a deployment is a YAML mapping")
        merged = {k: v for k, v in doc.items() if k in ("machine", "model_config")}
        for src, at in ((doc, str(path)), (item, where)):
            if not isinstance(src.get("env") or {}, dict):
                raise BadInputError(f"{at}: env must be a mapping (VAR: value)")
        merged["env"] = {**(doc.get("env") or {}), **(item.get("env") or {})}
        merged.update({k: v for k, v in item.items() if k != "env"})
        out.append((str(item.get("name") or f"deployment {n + 1}"), deployment_from_mapping(merged, where=where), merged))
    return out

"""The machine a deployment will run on: detected here, or described in a file (``--env``).

Detection never needs a GPU: ``nvidia-smi`` and torch are used when present, ``/proc/meminfo``
for CPU memory, ``importlib.metadata`` for installed packages and their declared requirements.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml
from bugatlas.preflight._data import GIB, MIB

# Packages whose versions matter to the checks (engines, their stacks, loaders).
WATCHED_PACKAGES = (
    "torch", "vllm", "sglang", "transformers", "tokenizers", "safetensors", "flash-attn",
    "flashinfer-python", "xformers", "triton", "accelerate", "bitsandbytes", "llama-cpp-python",
    "gguf", "numpy",
)  # fmt: skip


@dataclass
class GPU:
    name: str
    memory_bytes: int
    compute_capability: str | None = None
    index: int = 0
    driver: str | None = None
    uuid: str | None = None

    @property
    def cc(self) -> tuple[int, int] | None:
        if not self.compute_capability:
            return None
        major, _, minor = str(self.compute_capability).partition(".")
        return int(major), int(minor or 0)


@dataclass
class Machine:
    gpus: list[GPU] = field(default_factory=list)
    driver: str | None = None
    cuda_runtime: str | None = None                 # CUDA the engine's torch is built with
    cpu_ram_bytes: int | None = None
    cpu_ram_available_bytes: int | None = None
    python: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    requirements: dict[str, list[str]] = field(default_factory=dict)  # package -> declared reqs
    requires_python: dict[str, str] = field(default_factory=dict)     # package -> Requires-Python
    platform: str | None = None
    source: str = "this machine"
    notes: list[str] = field(default_factory=list)

    def visible_gpus(self, cuda_visible_devices: str | None) -> list[GPU]:
        """GPUs left after CUDA_VISIBLE_DEVICES (indices; an empty value hides all; a GPU
        listed twice hides all, as in CUDA and torch.cuda)."""
        if cuda_visible_devices is None:
            return list(self.gpus)
        if repeated_device(cuda_visible_devices):
            return []
        wanted = [p.strip() for p in cuda_visible_devices.split(",") if p.strip()]
        visible = []
        for w in wanted:
            if w.lstrip("-").isdigit() and int(w) < 0:
                break  # CUDA stops at the first invalid ordinal: "-1" hides every GPU
            if w.isdigit():
                match = [g for g in self.gpus if g.index == int(w)]
            else:  # a UUID ("GPU-8f3c…" or a MIG id): match by prefix when known, else by position
                match = [g for g in self.gpus if g.uuid and g.uuid.startswith(w)] or (
                    [self.gpus[len(visible)]] if len(visible) < len(self.gpus) else [])
            if not match:
                break
            if any(g is match[0] for g in visible):  # the same GPU by index and by UUID
                return []
            visible.append(match[0])
        return visible

    def to_description(self) -> dict[str, Any]:
        """This machine as a description ``--env`` reads back (detect on the GPU host, check
        anywhere)."""
        out: dict[str, Any] = {
            "gpus": [{"name": g.name, "memory_bytes": g.memory_bytes, "compute_capability": g.compute_capability,
                      **({"uuid": g.uuid} if g.uuid else {})} for g in self.gpus],
        }  # fmt: skip
        for key in ("driver", "cuda_runtime", "python", "platform"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.cpu_ram_bytes:
            out["cpu_ram_bytes"] = self.cpu_ram_bytes
        if self.cpu_ram_available_bytes:
            out["cpu_ram_available_bytes"] = self.cpu_ram_available_bytes
        for key in ("packages", "requirements", "requires_python"):
            if getattr(self, key):
                out[key] = dict(getattr(self, key))
        return out

    def package(self, name: str) -> str | None:
        return self.packages.get(_norm(name))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("requirements")
        data.pop("requires_python")
        return data


def repeated_device(cuda_visible_devices: str | None) -> str | None:
    """The first entry CUDA_VISIBLE_DEVICES lists twice (before any invalid ordinal), else
    None. CUDA then shows no GPU at all (torch.cuda: "Repeated ordinal results in empty set")."""
    seen: set[str] = set()
    for part in (cuda_visible_devices or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part.lstrip("-").isdigit():
            if int(part) < 0:
                break
            part = str(int(part))  # "01" is GPU 1
        if part in seen:
            return part
        seen.add(part)
    return None


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


# -- described machines ------------------------------------------------------------------------
def _bytes(spec: dict[str, Any], stem: str, where: str) -> int | None:
    for suffix, scale in (("_bytes", 1), ("_gib", GIB), ("_gb", 10**9), ("_mib", MIB)):
        if f"{stem}{suffix}" in spec:
            try:
                value = float(spec[f"{stem}{suffix}"])
            except (TypeError, ValueError):
                raise BadInputError(f"{where}: {stem}{suffix} must be a number") from None
            if not math.isfinite(value) or value < 0:  # -24 GiB sized every model as not fitting
                raise BadInputError(f"{where}: {stem}{suffix} must be a number ≥ 0, got {spec[f'{stem}{suffix}']!r}")
            return int(value * scale)
    return None


def machine_from_mapping(data: dict[str, Any], *, where: str) -> Machine:
    """A described machine::

        gpus:
          - {name: NVIDIA GeForce RTX 4090, memory_gib: 24, compute_capability: "8.9", count: 1}
        driver: "550.54.14"
        cuda_runtime: "12.4"
        cpu_ram_gib: 64
        python: "3.11.9"
        packages: {torch: "2.5.1", vllm: "0.7.3", transformers: "4.48.3"}
    """
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: a machine description is a mapping")
    gpus: list[GPU] = []
    if not isinstance(data.get("gpus") or [], list):
        raise BadInputError(f"{where}: gpus must be a list of GPUs ({{name, memory_gib, compute_capability}})")
    for key in ("packages", "requirements", "requires_python"):
        if not isinstance(data.get(key) or {}, dict):
            raise BadInputError(f"{where}: {key} must be a mapping of package name to value")
    for n, spec in enumerate(data.get("gpus") or []):
        if not isinstance(spec, dict) or "name" not in spec:
            raise BadInputError(f"{where}: gpus[{n}] needs at least name and memory_gib")
        memory = _bytes(spec, "memory", f"{where}: gpus[{n}]")
        if not memory:
            raise BadInputError(f"{where}: gpus[{n}] ({spec['name']}) needs memory_gib or memory_bytes (> 0)")
        cc = spec.get("compute_capability")
        if cc is not None and not re.fullmatch(r"\d+(\.\d+)?", str(cc)):
            raise BadInputError(f"{where}: gpus[{n}] ({spec['name']}): compute_capability {cc!r} is not like \"8.9\"")
        try:
            count = int(spec.get("count", 1))
        except (TypeError, ValueError):
            count = -1
        if count < 0:
            raise BadInputError(f"{where}: gpus[{n}] ({spec['name']}): count {spec.get('count')!r} is not a whole number ≥ 0")
        for _ in range(count):
            gpus.append(GPU(name=str(spec["name"]), memory_bytes=memory,
                            compute_capability=str(cc) if cc is not None else None,
                            index=len(gpus), driver=spec.get("driver"), uuid=spec.get("uuid")))  # fmt: skip
    packages = {_norm(k): str(v) for k, v in (data.get("packages") or {}).items()}
    requirements = {_norm(k): list(v) for k, v in (data.get("requirements") or {}).items()}
    requires_python = {_norm(k): str(v) for k, v in (data.get("requires_python") or {}).items()}
    driver = data.get("driver") or next((g.driver for g in gpus if g.driver), None)
    ram = _bytes(data, "cpu_ram", where)
    return Machine(
        gpus=gpus, driver=str(driver) if driver else None,
        cuda_runtime=str(data["cuda_runtime"]) if data.get("cuda_runtime") else None,
        cpu_ram_bytes=ram, cpu_ram_available_bytes=_bytes(data, "cpu_ram_available", where) or ram,
        python=str(data["python"]) if data.get("python") else None, packages=packages,
        requirements=requirements, requires_python=requires_python,
        platform=data.get("platform"), source=where,
    )  # fmt: skip


def load_machine(path: str | os.PathLike[str]) -> Machine:
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read machine description ({' '.join(str(exc).split())})") from exc
    return machine_from_mapping(data or {}, where=str(path))


# -- this machine --------------------------------------------------------------------------------
def _meminfo(path: Path = Path("/proc/meminfo")) -> tuple[int | None, int | None]:
    try:
        fields = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    except OSError:
        return None, None

    def kib(key: str) -> int | None:
        value = fields.get(key)
        return int(value.split()[0]) * 1024 if value else None

    return kib("MemTotal"), kib("MemAvailable")


def parse_nvidia_smi(text: str) -> tuple[list[GPU], str | None]:
    """Rows of ``nvidia-smi --query-gpu=index,name,memory.total,compute_cap,driver_version,uuid
    --format=csv,noheader,nounits`` (memory in MiB)."""
    gpus, driver = [], None
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        index, name, mem, cc, drv = parts[:5]
        uuid = parts[5] if len(parts) > 5 else None
        gpus.append(GPU(name=name, memory_bytes=int(float(mem)) * MIB,
                        compute_capability=None if cc in ("[N/A]", "") else cc,
                        index=int(index), driver=drv, uuid=uuid))  # fmt: skip
        driver = driver or drv
    return gpus, driver


def _nvidia_smi() -> tuple[list[GPU], str | None]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return [], None
    # Drivers before 510 do not know the compute_cap field: ask again without it, and take the
    # compute capability from the GPU catalogue (data/gpus.yaml) by name.
    for fields in ("index,name,memory.total,compute_cap,driver_version,uuid",
                   "index,name,memory.total,driver_version,uuid"):  # fmt: skip
        try:
            out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=20, check=True).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            continue
        if "compute_cap" not in fields:
            out = "\n".join(_insert_cc(line) for line in out.strip().splitlines())
        return parse_nvidia_smi(out)
    return [], None


def _insert_cc(line: str) -> str:
    """index,name,mem,driver,uuid -> index,name,mem,cc,driver,uuid with cc from the catalogue."""
    from bugatlas.preflight._data import load

    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 4:
        return line
    cc = next((r["compute_capability"] for r in load("gpus") if re.search(r["match"], parts[1], re.I)), "[N/A]")
    return ", ".join(parts[:3] + [str(cc)] + parts[3:])


def _torch_info() -> tuple[list[GPU], str | None]:
    """GPUs and CUDA build from torch, only when torch is installed (it is not a dependency)."""
    try:
        import torch  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - any import failure means "no torch here"
        return [], None
    gpus = []
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                gpus.append(GPU(name=props.name, memory_bytes=int(props.total_memory),
                                compute_capability=f"{props.major}.{props.minor}", index=i))  # fmt: skip
    except Exception:  # noqa: BLE001 - a broken CUDA install is reported by the checks instead
        pass
    return gpus, getattr(torch.version, "cuda", None)


def installed_packages(
    names: tuple[str, ...] = WATCHED_PACKAGES,
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """Versions of the watched packages and of everything the installed engines require,
    the engines' declared requirements and their Requires-Python."""
    versions: dict[str, str] = {}
    requirements: dict[str, list[str]] = {}
    requires_python: dict[str, str] = {}
    queue = list(names)
    engines = {"vllm", "sglang"}
    while queue:
        name = queue.pop(0)
        if _norm(name) in versions:
            continue
        try:
            versions[_norm(name)] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if _norm(name) in engines:
            requirements[_norm(name)] = list(metadata.requires(name) or [])
            rp = metadata.metadata(name).get("Requires-Python")
            if rp:
                requires_python[_norm(name)] = rp
            for line in requirements[_norm(name)]:
                match = re.match(r"[A-Za-z0-9_.\-]+", line)
                if match:
                    queue.append(match.group(0))
    return versions, requirements, requires_python


_PROBE = r"""
import json, platform, re
from importlib import metadata
names = json.loads(%r)
engines = {"vllm", "sglang"}
out = {"python": platform.python_version(), "packages": {}, "requirements": {}, "requires_python": {}}
queue = list(names)
while queue:
    name = queue.pop(0)
    key = name.lower().replace("_", "-")
    if key in out["packages"]:
        continue
    try:
        out["packages"][key] = metadata.version(name)
    except metadata.PackageNotFoundError:
        continue
    if key in engines:
        reqs = list(metadata.requires(name) or [])
        out["requirements"][key] = reqs
        rp = metadata.metadata(name).get("Requires-Python")
        if rp:
            out["requires_python"][key] = rp
        for line in reqs:
            m = re.match(r"[A-Za-z0-9_.\-]+", line)
            if m:
                queue.append(m.group(0))
print(json.dumps(out))
"""


def probe_interpreter(python: str) -> dict[str, Any]:
    """Python version and packages of another interpreter (the engine's venv), read through
    importlib.metadata in a subprocess; nothing is imported from the engine itself."""
    import json

    script = _PROBE % json.dumps(list(WATCHED_PACKAGES))
    try:
        done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise BadInputError(f"{python}: cannot query this Python interpreter ({exc})") from exc


def detect_machine(python: str | None = None) -> Machine:
    """This machine: GPUs (nvidia-smi, else torch), CPU memory, Python, packages. With
    ``python``, the Python version and packages are those of that interpreter (the engine's
    environment) instead of the one running preflight."""
    gpus, driver = _nvidia_smi()
    torch_gpus, cuda = _torch_info()
    if not gpus:
        gpus = torch_gpus
    elif torch_gpus:  # nvidia-smi of old drivers lacks compute_cap; torch knows it
        for gpu, tg in zip(gpus, torch_gpus, strict=False):
            gpu.compute_capability = gpu.compute_capability or tg.compute_capability
    total, available = _meminfo()
    packages, requirements, requires_python = installed_packages()
    machine = Machine(
        gpus=gpus, driver=driver, cuda_runtime=cuda, cpu_ram_bytes=total,
        cpu_ram_available_bytes=available, python=platform.python_version(), packages=packages,
        requirements=requirements, requires_python=requires_python,
        platform=f"{sys.platform}-{platform.machine()}",
    )  # fmt: skip
    if python and os.path.abspath(python) != os.path.abspath(sys.executable):  # venvs share a binary
        probed = probe_interpreter(python)
        machine.python = probed["python"]
        machine.packages = probed["packages"]
        machine.requirements = probed["requirements"]
        machine.requires_python = probed["requires_python"]
        machine.notes.append(f"packages of {python}")
        torch_version = machine.packages.get("torch", "")
        match = re.search(r"\+cu(\d+)(\d)$", torch_version)
        machine.cuda_runtime = f"{match.group(1)}.{match.group(2)}" if match else None
    if not gpus:
        machine.notes.append("no NVIDIA GPU found (nvidia-smi and torch.cuda see none)")
    return machine

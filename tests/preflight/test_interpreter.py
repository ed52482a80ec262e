"""Reading the engine's own Python environment: a real second interpreter (a venv) whose
site-packages holds an installed distribution's metadata."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bugatlas.errors import BadInputError
from bugatlas.preflight import parse_command, run_preflight
from bugatlas.preflight.machine import detect_machine, probe_interpreter


@pytest.fixture(scope="module")
def engine_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "engine"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, version, requires in (
        ("vllm", "0.6.3", ["torch==2.4.0", "transformers>=4.45.0", "pywin32; sys_platform == 'win32'"]),
        ("torch", "2.5.1+cu124", []),
        ("transformers", "4.46.1", []),
    ):
        dist = site / f"{name}-{version}.dist-info"
        dist.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        if name == "vllm":
            lines.append("Requires-Python: >=3.8")
        lines += [f"Requires-Dist: {r}" for r in requires]
        (dist / "METADATA").write_text("\n".join(lines) + "\n")
    return python


def test_probe_reads_packages_and_declared_requirements(engine_venv):
    data = probe_interpreter(str(engine_venv))
    assert data["packages"]["vllm"] == "0.6.3" and data["packages"]["torch"] == "2.5.1+cu124"
    assert "torch==2.4.0" in data["requirements"]["vllm"]
    assert data["requires_python"]["vllm"] == ">=3.8"


def test_launch_naming_the_interpreter_is_checked_against_its_packages(engine_venv):
    launch = parse_command(f"{engine_venv} -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-8B --max-model-len 4096")
    assert launch.engine_interpreter() == str(engine_venv)
    machine = detect_machine(python=launch.engine_interpreter())
    assert machine.cuda_runtime == "12.4"  # from torch's +cu124 build tag
    report = run_preflight(launch, machine, only=["env.engine"])
    (f,) = report.findings
    assert f.severity == "block" and "torch 2.5.1+cu124 (declared ==2.4.0)" in f.message


def test_a_broken_interpreter_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="cannot query"):
        probe_interpreter(str(tmp_path / "no-python"))

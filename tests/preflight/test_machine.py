"""Detecting this machine (no GPU needed) and parsing nvidia-smi's CSV."""

from __future__ import annotations

import re
import sys

import pytest

from bugatlas.preflight.machine import detect_machine, installed_packages, parse_nvidia_smi

GIB = 1024**3


def test_parse_nvidia_smi_csv():
    text = ("0, NVIDIA A100-SXM4-80GB, 81920, 8.0, 535.104.05\n"
            "1, NVIDIA A100-SXM4-80GB, 81920, 8.0, 535.104.05\n"
            "2, Tesla K80, 11441, [N/A], 470.82.01\n")
    gpus, driver = parse_nvidia_smi(text)
    assert driver == "535.104.05"
    assert [g.index for g in gpus] == [0, 1, 2]
    assert gpus[0].memory_bytes == 80 * GIB and gpus[0].cc == (8, 0)
    assert gpus[2].compute_capability is None


def test_detect_this_machine():
    m = detect_machine()
    assert m.python == ".".join(map(str, sys.version_info[:3]))
    assert m.cpu_ram_bytes and m.cpu_ram_bytes > GIB
    assert m.package("packaging") is None or m.package("packaging")  # not watched
    assert m.package("tokenizers")  # a bugatlas dependency, always installed
    if not m.gpus:
        assert any("no NVIDIA GPU" in n for n in m.notes)


def test_installed_packages_follow_engine_requirements():
    versions, requirements, requires_python = installed_packages(("gguf",))
    assert "gguf" in versions and "numpy" not in versions  # only engines' requirements are followed


def test_cuda_visible_devices_forms():
    text = ("0, NVIDIA L4, 23034, 8.9, 550.54.14, GPU-aaaa1111\n"
            "1, NVIDIA L4, 23034, 8.9, 550.54.14, GPU-bbbb2222\n"
            "2, NVIDIA L4, 23034, 8.9, 550.54.14, GPU-cccc3333\n")
    from bugatlas.preflight.machine import Machine

    gpus, _ = parse_nvidia_smi(text)
    m = Machine(gpus=gpus)
    assert [g.index for g in m.visible_gpus(None)] == [0, 1, 2]
    assert [g.index for g in m.visible_gpus("2,0")] == [2, 0]
    assert [g.index for g in m.visible_gpus("GPU-bbbb")] == [1]
    assert m.visible_gpus("") == [] and m.visible_gpus("-1") == []
    assert [g.index for g in m.visible_gpus("0,-1,2")] == [0]  # CUDA stops at the invalid ordinal
    assert [g.index for g in m.visible_gpus("0,7")] == [0]


def test_old_drivers_without_compute_cap_field_get_it_from_the_catalogue():
    from bugatlas.preflight.machine import _insert_cc

    line = _insert_cc("0, Tesla V100-SXM2-32GB, 32510, 470.82.01, GPU-1234")
    gpus, driver = parse_nvidia_smi(line)
    assert gpus[0].compute_capability == "7.0" and driver == "470.82.01" and gpus[0].uuid == "GPU-1234"
    unknown, _ = parse_nvidia_smi(_insert_cc("0, Some Future GPU, 100000, 999.1, GPU-9"))
    assert unknown[0].compute_capability is None


def test_detect_machine_with_an_nvidia_smi_on_path(tmp_path, monkeypatch):
    """A stand-in nvidia-smi executable (an old driver that rejects compute_cap) on PATH."""
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to query.\' >&2; exit 2;; esac\n'
        "echo '0, NVIDIA A100-SXM4-40GB, 40960, 470.82.01, GPU-aaaa'\n"
        "echo '1, NVIDIA A100-SXM4-40GB, 40960, 470.82.01, GPU-bbbb'\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    m = detect_machine()
    assert [g.name for g in m.gpus] == ["NVIDIA A100-SXM4-40GB"] * 2
    assert m.gpus[0].compute_capability == "8.0" and m.driver == "470.82.01"
    assert m.gpus[1].memory_bytes == 40 * GIB


def test_described_machine_round_trips_through_preflight_env(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bugatlas.cli import app
    from bugatlas.preflight import load_machine

    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho '0, NVIDIA L4, 23034, 8.9, 550.54.14, GPU-aaaa'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    out = tmp_path / "node.yaml"
    result = CliRunner().invoke(app, ["preflight-env", "-o", str(out)])
    assert result.exit_code == 0, result.output
    here, back = detect_machine(), load_machine(out)
    assert back.gpus[0].name == "NVIDIA L4" and back.gpus[0].cc == (8, 9) and back.driver == "550.54.14"
    assert back.cpu_ram_bytes == here.cpu_ram_bytes and back.packages == here.packages and back.python == here.python


def test_wrongly_typed_machine_descriptions_are_one_line_errors(tmp_path):
    import pytest

    from bugatlas.errors import BadInputError
    from bugatlas.preflight import load_machine

    for text, message in [
        ("gpus: 3\n", "gpus must be a list"),
        ("gpus:\n  - {name: X, memory_gib: 24, compute_capability: eight}\n", "compute_capability 'eight'"),
        ("gpus:\n  - {name: X, memory_gib: 24, count: two}\n", "count 'two'"),
        ("gpus:\n  - {name: X, memory_gib: 24, count: -1}\n", "count -1"),
        ("packages: [vllm]\n", "packages must be a mapping"),
    ]:
        path = tmp_path / "gpu.yaml"
        path.write_text(text)
        with pytest.raises(BadInputError, match=message):
            load_machine(path)
    path.write_text("gpus:\n  - {name: X, memory_gib: 24, compute_capability: '8.9', count: '2'}\n")
    assert len(load_machine(path).gpus) == 2


def test_described_memory_must_be_a_size():
    # memory_gib: -24 was accepted and sized every model as not fitting (a false BLOCK); .inf was
    # an OverflowError traceback
    from bugatlas.errors import BadInputError
    from bugatlas.preflight import machine_from_mapping

    for doc, message in (({"gpus": [{"name": "A", "memory_gib": -24}]}, "memory_gib must be a number ≥ 0"),
                         ({"gpus": [{"name": "A", "memory_gib": float("inf")}]}, "memory_gib must be a number ≥ 0"),
                         ({"gpus": [{"name": "A", "memory_gib": 0}]}, "needs memory_gib or memory_bytes (> 0)"),
                         ({"cpu_ram_gib": -5}, "cpu_ram_gib must be a number ≥ 0")):  # fmt: skip
        with pytest.raises(BadInputError, match=re.escape(message)):
            machine_from_mapping(doc, where="m.yaml")
    assert machine_from_mapping({"gpus": [{"name": "A", "memory_gib": 24}], "cpu_ram_gib": 0}, where="m").gpus

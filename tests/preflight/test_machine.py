"""Detecting this machine (no GPU needed) and parsing nvidia-smi's CSV."""

from __future__ import annotations

import sys

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

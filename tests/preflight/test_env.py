"""Environment checks against described machines (and the compatibility table's data)."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from tests.preflight.helpers import build_model_dir, tiny_config

from bugatlas.preflight import load_machine, machine_from_mapping, parse_command, run_preflight
from bugatlas.preflight._data import load


def _machine(cc="8.9", name="NVIDIA L4", driver="550.54.14", **extra):
    spec = {"gpus": [{"name": name, "memory_gib": 24, "compute_capability": cc}], "driver": driver,
            "cpu_ram_gib": 64, "python": "3.11.9"}
    spec.update(extra)
    return machine_from_mapping(spec, where="test")


def _one(report, check_id):
    found = [f for f in report.findings if f.check == check_id]
    assert len(found) == 1, [f.message for f in found]
    return found[0]


def _run(cmd, machine, **kw):
    return run_preflight(parse_command(cmd), machine, **kw)


def test_every_compatibility_row_has_a_source_and_valid_specifiers():
    compat = load("compat")
    for engine, rows in compat["engine_releases"].items():
        for row in rows:
            assert row["source"].startswith("https://"), (engine, row)
            for key in ("versions", "torch", "python", "transformers"):
                if key in row:
                    SpecifierSet(row[key])
    for table in ("cuda_drivers", "architectures", "features", "torch_default_cuda"):
        for row in compat[table]:
            assert row["source"].startswith("https://"), row
    for row in compat["cuda_drivers"]:
        assert Version(row["minimum"]) <= Version(row["toolkit"])
    for name, row in {**compat["kernels"], **compat["quantization"]}.items():
        assert row["source"].startswith("https://"), name


def test_python_outside_the_engine_range_blocks():
    m = _machine(python="3.13.1", packages={"vllm": "0.6.3", "torch": "2.4.0", "transformers": "4.45.2"})
    f = _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096", m), "env.python")
    assert f.severity == "block" and ">=3.8,<3.13" in f.message
    ok = _machine(packages={"vllm": "0.6.3"})
    assert _one(_run("vllm serve x --max-model-len 4096", ok), "env.python").severity == "pass"


def test_engine_missing_or_with_the_wrong_torch_blocks():
    missing = _machine(packages={"torch": "2.4.0"})
    f = _one(_run("vllm serve x", missing), "env.engine")
    assert f.severity == "block" and "not installed" in f.message
    wrong = _machine(packages={"vllm": "0.6.3", "torch": "2.5.1", "transformers": "4.46.0"})
    f = _one(_run("vllm serve x", wrong), "env.engine")
    assert f.severity == "block" and "torch 2.5.1 (declared ==2.4.0)" in f.message
    assert any(c.value == "Incompatible Version" for c in f.classes)
    right = _machine(packages={"vllm": "0.6.3", "torch": "2.4.0", "transformers": "4.46.0"})
    assert _one(_run("vllm serve x", right), "env.engine").severity == "pass"


def test_declared_requirements_from_package_metadata_with_markers():
    m = _machine(packages={"vllm": "0.9.1", "torch": "2.7.0", "numpy": "2.2.0"},
                 requirements={"vllm": ["torch==2.7.0", "numpy<2.0", "pywin32; sys_platform == 'win32'",
                                        "xformers==0.0.30; platform_system == 'Linux'"]})
    f = _one(_run("vllm serve x", m), "env.engine")
    # numpy is unmet (warning-level package) and xformers is missing on Linux (blocking)
    assert f.severity == "block"
    assert any("numpy 2.2.0" in u for u in f.numbers["unmet"]) and f.numbers["missing"] == ["xformers==0.0.30; platform_system == \"Linux\""]


@pytest.mark.parametrize(("driver", "severity"), [("470.82.01", "block"), ("535.54.03", "warn"), ("550.54.14", "pass")])
def test_driver_against_cuda_runtime(driver, severity):
    m = _machine(driver=driver, packages={"torch": "2.5.1+cu124", "vllm": "0.7.3"})
    f = _one(_run("vllm serve x", m), "env.cuda_driver")
    assert f.severity == severity, f.message
    assert f.numbers.get("cuda_runtime", "12.4") == "12.4"


def test_cuda_runtime_from_torch_default_build():
    m = _machine(driver="545.23.06", packages={"torch": "2.7.0"})
    f = _one(_run("vllm serve x", m), "env.cuda_driver")
    assert f.numbers["cuda_runtime"] == "12.6" and f.severity == "warn"


def test_architecture_needs_newer_transformers_and_engine(tmp_path):
    m = _machine(packages={"vllm": "0.8.2", "transformers": "4.50.0", "torch": "2.6.0"})
    f = _one(_run("vllm serve Qwen/Qwen3-8B --max-model-len 4096", m), "env.architecture")
    assert f.severity == "block"
    assert "transformers>=4.51.0" in f.fix and "vllm>=0.8.4" in f.fix
    newer = _machine(packages={"vllm": "0.9.0", "transformers": "4.52.0", "torch": "2.7.0"})
    assert _one(_run("vllm serve Qwen/Qwen3-8B --max-model-len 4096", newer), "env.architecture").severity == "pass"
    # Llama-3.1's rope scaling is a config feature with its own minimum
    old = _machine(packages={"vllm": "0.5.0", "transformers": "4.42.0", "torch": "2.3.0"})
    f = _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096", old), "env.architecture")
    assert f.severity == "block" and "llama3" in f.message.lower()
    # a checkpoint that ships its own code and --trust-remote-code does not need transformers' class
    model = build_model_dir(tmp_path / "m", config=tiny_config(architectures=["Qwen3ForCausalLM"], model_type="qwen3",
                                                                auto_map={"AutoModelForCausalLM": "modeling.Qwen3"}))
    remote = _machine(packages={"vllm": "0.9.0", "transformers": "4.46.0"})
    f = _one(_run(f"vllm serve {model} --trust-remote-code", remote), "env.architecture")
    assert f.severity == "pass"


def test_bf16_on_pre_ampere():
    t4 = _machine(cc="7.5", name="Tesla T4")
    found = _run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096 --dtype bfloat16", t4).findings
    (f,) = [f for f in found if f.check == "env.kernels" and f.severity == "block"]
    assert "bfloat16 needs compute capability ≥ 8.0" in f.message
    report = _run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096", t4)
    kernels = [f for f in report.findings if f.check == "env.kernels"]
    assert {f.severity for f in kernels} == {"warn"}  # bf16 auto fallback + no FlashAttention-2
    assert _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096 --dtype float16", _machine(cc="8.0")), "env.kernels").severity == "pass"


def test_attention_backend_and_fp8_kv_cache_need_newer_gpus():
    a100 = _machine(cc="8.0", name="NVIDIA A100")
    f = _one(_run("python -m sglang.launch_server --model-path Qwen/Qwen3-8B --attention-backend fa3 --context-length 4096", a100), "env.kernels")
    assert f.severity == "block" and "9.0" in f.message
    v100 = _machine(cc="7.0", name="Tesla V100")
    found = _run("VLLM_ATTENTION_BACKEND=FLASH_ATTN vllm serve x --model-config llama-3-8b --dtype float16 --kv-cache-dtype fp8".replace("--model-config llama-3-8b ", ""), v100, model_config="llama-3-8b")
    sev = sorted(f.severity for f in found.findings if f.check == "env.kernels")
    assert sev == ["block", "block"]
    f = _one(_run("vllm serve x --kv-cache-dtype fp8 --dtype float16", a100, model_config="llama-3-8b"), "env.kernels")
    assert f.severity == "warn"


def test_described_machine_file_formats(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"gpus": [{"name": "H100", "memory_bytes": 85899345920, "compute_capability": "9.0", "count": 8}], "cpu_ram_gb": 2000}')
    m = load_machine(p)
    assert len(m.gpus) == 8 and m.gpus[7].index == 7 and m.cpu_ram_bytes == 2000 * 10**9
    assert [g.index for g in m.visible_gpus("2,5")] == [2, 5]
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus: [{name: X}]\n")
    from bugatlas.errors import BadInputError

    with pytest.raises(BadInputError, match="needs memory_gib"):
        load_machine(bad)


def test_cpu_torch_build_on_a_gpu_machine_blocks():
    m = _machine(packages={"torch": "2.4.0+cpu", "vllm": "0.6.3"})
    f = _one(_run("vllm serve x", m), "env.cuda_driver")
    assert f.severity == "block" and "cpu build" in f.message

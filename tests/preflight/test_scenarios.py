"""The issue's done-when scenarios, end to end through run_preflight and the CLI."""

from __future__ import annotations

import json

from tests.preflight.helpers import gpu_machine
from typer.testing import CliRunner

from bugatlas.cli import app
from bugatlas.preflight import EXIT_BLOCK, EXIT_PASS, load_machine, parse_command, run_preflight

GIB = 1024**3


def _blocking(report):
    return [f for f in report.findings if f.severity == "block"]


def test_llama3_8b_shape_on_one_24gib_gpu_with_tp2_and_128k_gives_exactly_two_blocks(tmp_path):
    machine = load_machine(gpu_machine(tmp_path))
    # Llama-3.1-8B has Llama-3-8B's shape (same layers, heads, sizes) and a 131,072 context.
    launch = parse_command("vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2 --max-model-len 131072")
    report = run_preflight(launch, machine)
    blocks = _blocking(report)
    assert sorted(f.check for f in blocks) == ["res.gpu_memory", "res.parallel_gpus"]
    assert report.exit_code == EXIT_BLOCK
    gpus = next(f for f in blocks if f.check == "res.parallel_gpus")
    assert gpus.numbers["gpus_needed"] == 2 and gpus.numbers["gpus_visible"] == 1
    mem = next(f for f in blocks if f.check == "res.gpu_memory")
    assert mem.numbers["weights_per_gpu_bytes"] == 8_030_261_248 * 2  # 14.96 GiB
    assert mem.numbers["kv_one_sequence_bytes"] == 131072 * 128 * 1024  # 16 GiB
    assert "weights 14.96 GiB" in mem.message and "KV cache 16.00 GiB" in mem.message
    assert mem.numbers["budget_bytes"] == int(24 * GIB * 0.9)
    # every blocking finding names its failure class and a fix
    for f in blocks:
        assert f.classes and f.fix and f.why


def test_a_configuration_that_fits_passes(tmp_path):
    machine = load_machine(gpu_machine(tmp_path))
    launch = parse_command("vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192")
    report = run_preflight(launch, machine)
    assert not [f for f in report.findings if f.severity in ("block", "warn")]
    assert report.exit_code == EXIT_PASS
    mem = next(f for f in report.findings if f.check == "res.gpu_memory")
    assert mem.numbers["full_length_sequences_that_fit"] > 1


def test_llama3_8b_itself_also_blocks_on_its_8k_trained_context(tmp_path):
    machine = load_machine(gpu_machine(tmp_path))
    launch = parse_command("vllm serve meta-llama/Meta-Llama-3-8B --tensor-parallel-size 2 --max-model-len 131072")
    report = run_preflight(launch, machine)
    assert sorted(f.check for f in _blocking(report)) == ["res.context", "res.gpu_memory", "res.parallel_gpus"]
    ok = parse_command("VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 vllm serve meta-llama/Meta-Llama-3-8B --max-model-len 16384")
    ctx = next(f for f in run_preflight(ok, machine).findings if f.check == "res.context")
    assert ctx.severity == "warn"


def test_cli_exit_codes_and_json(tmp_path):
    env = gpu_machine(tmp_path)
    runner = CliRunner()
    bad = runner.invoke(app, ["preflight", "--env", str(env), "--json", "--no-examples", "--",
                              "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "2",
                              "--max-model-len", "131072"])
    assert bad.exit_code == 20, bad.output
    data = json.loads(bad.output)
    assert data["verdict"] == "block" and data["counts"]["block"] == 2
    good = runner.invoke(app, ["preflight", "--env", str(env), "--no-examples", "--",
                               "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192"])
    assert good.exit_code == 0, good.output
    assert "verdict: PASS" in good.output


def test_several_deployments_in_one_file_share_a_machine(tmp_path):
    cfg = tmp_path / "fleet.yaml"
    cfg.write_text(
        "machine:\n  gpus: [{name: NVIDIA L4, memory_gib: 24, compute_capability: '8.9', count: 2}]\n"
        "deployments:\n"
        "  - {name: chat, command: 'vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 16384'}\n"
        "  - {name: big, command: 'vllm serve meta-llama/Llama-3.1-70B-Instruct -tp 2 --max-model-len 8192'}\n"
        "  - name: one-gpu\n    command: 'vllm serve Qwen/Qwen2.5-7B-Instruct -tp 2 --max-model-len 8192'\n"
        "    machine: {gpus: [{name: NVIDIA L4, memory_gib: 24, compute_capability: '8.9'}]}\n"
    )
    result = CliRunner().invoke(app, ["preflight", "--config", str(cfg), "--json", "--no-examples"])
    assert result.exit_code == 20, result.output
    data = json.loads(result.output)
    verdicts = {d["name"]: d["verdict"] for d in data["deployments"]}
    # 70B in bf16 is 131 GiB: two 24 GiB cards cannot hold it; one GPU cannot run TP 2
    assert verdicts == {"chat": "pass", "big": "block", "one-gpu": "block"}
    assert data["exit_code"] == 20


def test_junit_report_for_ci(tmp_path):
    import xml.etree.ElementTree as ET

    env = gpu_machine(tmp_path)
    out = tmp_path / "preflight.xml"
    result = CliRunner().invoke(app, ["preflight", "--env", str(env), "--no-examples", "--junit", str(out), "--",
                                      "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "-tp", "2", "--max-model-len", "131072"])
    assert result.exit_code == 20
    suite = ET.parse(out).getroot().find("testsuite")
    failures = {case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None}
    assert failures == {"res.parallel_gpus", "res.gpu_memory"}
    assert suite.get("failures") == "2" and int(suite.get("tests")) == len(list(suite.iter("testcase")))


def test_a_bf16_repository_name_is_not_a_gguf_checkpoint(tmp_path):
    # sgl-project/sglang#3400 serves /root/DeepSeek-R1-BF16 (safetensors); the -BF16 suffix made
    # preflight take it for a GGUF file and block with "SGLang does not support GGUF checkpoints"
    machine = load_machine(gpu_machine(tmp_path))
    for cmd in ("python3 -m sglang.launch_server --model-path unsloth/DeepSeek-R1-BF16 --tp 8 --trust-remote-code",
                "vllm serve Qwen/Qwen2.5-7B-Instruct-F16"):
        report = run_preflight(parse_command(cmd), machine)
        quant = [f for f in report.findings if f.check == "assets.quantization"]
        assert quant and all(f.severity == "pass" for f in quant), [(f.severity, f.message) for f in quant]
        assert "gguf" not in str(report.model).lower(), report.model
    # a .gguf file named so is one
    assert "BF16 from the name" in run_preflight(parse_command("llama-server -m ./llama-3-8b-bf16.gguf"), machine).model["source"]


def test_a_16_bit_conversion_of_an_fp8_model_has_no_fp8_blocks(tmp_path):
    # sgl-project/sglang#3400: "I've already converted the weights to bf16" — DeepSeek-R1-BF16 at
    # TP 32 over 4 nodes; the published DeepSeek shape is FP8 with 128×128 blocks, which the
    # 16-bit checkpoint no longer has, so its 576-wide MLP slices are fine
    machine = load_machine(gpu_machine(tmp_path))
    tail = " --tp 32 --nnodes 4 --trust-remote-code"
    bf16 = run_preflight(parse_command("python3 -m sglang.launch_server --model-path /root/DeepSeek-R1-BF16" + tail), machine)
    heads = next(f for f in bf16.findings if f.check == "res.parallel_heads")
    assert heads.severity == "pass", heads.message
    assert bf16.model["source"].endswith("+ BF16 from the name")
    fp8 = run_preflight(parse_command("python3 -m sglang.launch_server --model-path deepseek-ai/DeepSeek-R1" + tail), machine)
    heads = next(f for f in fp8.findings if f.check == "res.parallel_heads")
    assert heads.severity == "block" and "FP8 weight block" in heads.message

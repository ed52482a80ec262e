"""Retrospective scan of issue reports: command extraction and machine-free checks."""

from __future__ import annotations

from bugatlas.preflight import machine_from_mapping, parse_command, run_preflight
from bugatlas.preflight.model import find_known, quantization_from_name, spec_for_name
from bugatlas.preflight.retro import (
    extract_commands,
    guess_machine,
    scan_issue,
    scan_store,
    store_labels,
)

BODY = """### Your current environment
8x NVIDIA A100-SXM4-80GB

### How to reproduce
```bash
$ CUDA_VISIBLE_DEVICES=0,1,2 python3 -m vllm.entrypoints.openai.api_server \\
    --model meta-llama/Meta-Llama-3-70B-Instruct \\
    --tensor-parallel-size 3 --max-model-lenght 8192 2>&1 | tee log.txt
```
and also `vllm serve Qwen/Qwen2.5-7B-Instruct --dytpe half`
llama-server --version
"""


def test_extract_commands_joins_continuations_and_stops_at_pipes():
    cmds = extract_commands(BODY)
    assert cmds[0] == ["CUDA_VISIBLE_DEVICES=0,1,2", "python3", "-m", "vllm.entrypoints.openai.api_server",
                       "--model", "meta-llama/Meta-Llama-3-70B-Instruct", "--tensor-parallel-size", "3",
                       "--max-model-lenght", "8192"]
    assert cmds[1] == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct", "--dytpe", "half"]
    assert len(cmds) == 2  # `llama-server --version` is not a launch


def test_scan_issue_finds_machine_free_failures():
    scan = scan_issue("vllm-project/vllm", 1, "TP 3 fails", BODY, guess_gpu=True)
    checks = {(f["check"], f["severity"]) for f in scan.findings}
    assert ("res.parallel_heads", "block") in checks      # 64 heads / 8 KV heads over 3 shards
    assert ("cfg.flags", "warn") in checks                # --max-model-lenght, --dytpe
    assert scan.gpu == "NVIDIA A100 80GB"


def test_gpu_named_in_text_sizes_the_deployment():
    launch = parse_command("vllm serve meta-llama/Llama-3.1-70B-Instruct -tp 2")
    machine = guess_machine("running on 2x L40S", launch)
    assert machine is not None and len(machine.gpus) == 2 and machine.gpus[0].memory_bytes == 48 * 1024**3
    assert guess_machine("on my laptop", launch) is None
    assert guess_machine("A100 40GB", launch).gpus[0].name == "NVIDIA A100 40GB"
    assert guess_machine("tested on T4, then on A100", launch).gpus[0].name == "Tesla T4"  # first named
    assert guess_machine("MI300X with ROCm 6.2; also tried an A100", launch) is None  # AMD: other rules


def test_quantization_announced_by_the_name():
    assert find_known("TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ") == "mixtral-8x7b"
    assert quantization_from_name("Meta-Llama-3-8B-Instruct.Q4_K_M.gguf")["bits"] == 4.89
    assert quantization_from_name("RedHatAI/Qwen3-30B-A3B-FP8-dynamic")["quant_method"] == "fp8"
    assert quantization_from_name("Qwen/Qwen2.5-7B-Instruct") is None
    # Llama-3-8B Q4_K_M is a 4.92 GB file
    assert spec_for_name("Meta-Llama-3-8B-Instruct.Q4_K_M.gguf").weights_bytes() == int(8_030_261_248 * 4.89 / 8)
    awq = spec_for_name("TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ")
    assert awq.quant_method == "awq" and awq.weights_bytes() < 26e9


def test_sglang_dp_attention_multi_node_and_expert_parallel():
    machine = machine_from_mapping({"gpus": [{"name": "H20", "memory_gib": 96, "compute_capability": "9.0", "count": 8}]},
                                   where="t")
    cmd = ("python3 -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3 --nnodes 4 --tp-size 32 "
           "--dp-size 32 --enable-dp-attention --enable-deepep-moe --moe-dense-tp-size 1")
    report = run_preflight(parse_command(cmd), machine, only=["res.parallel"])
    assert {f.check: f.severity for f in report.findings} == {"res.parallel_gpus": "pass", "res.parallel_heads": "pass"}
    gpus = next(f for f in report.findings if f.check == "res.parallel_gpus")
    assert gpus.numbers["gpus_needed"] == 8  # 32 GPUs over 4 nodes


def test_config_overrides_change_the_shape():
    machine = machine_from_mapping({"gpus": [{"name": "H20", "memory_gib": 96, "compute_capability": "9.0", "count": 2}]},
                                   where="t")
    full = run_preflight(parse_command("python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-R1 --tp 2 --context-length 4096"),
                         machine, only=["res.gpu_memory"])
    assert full.findings[0].severity == "block"
    small = run_preflight(parse_command("python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-R1 --tp 2 "
                                        "--context-length 4096 --json-model-override-args '{\"num_hidden_layers\": 4}'"),
                          machine, only=["res.gpu_memory"])
    assert small.findings[0].severity == "pass"
    assert small.model["layers"] == 4


def test_scan_the_real_corpus_and_store_labels(corpus_store):
    result = scan_store(corpus_store, repos=["sgl-project/sglang"], guess_gpu=True)
    data = result.to_dict()
    assert data["with_command"] > 50 and data["parsed"] <= data["with_command"]
    assert data["issues_with_block"] + data["issues_with_warn_only"] == len(data["issues"])
    written = store_labels(corpus_store, result)
    rows = corpus_store.query("SELECT COUNT(*) AS n FROM labels WHERE taxonomy = 'preflight' AND source = 'preflight-retro'")
    assert rows[0]["n"] == written
    # a typo the corpus really contains: SGLang's --context-len for --context-length
    typo = [i for i in data["issues"] if any("did you mean --context-length" in f["message"] for f in i["findings"])]
    assert typo


def test_preflight_issues_cli(corpus_store):
    import json

    from typer.testing import CliRunner

    from bugatlas.cli import app

    path = str(corpus_store.path)
    corpus_store.close()
    result = CliRunner().invoke(app, ["preflight-issues", "--db", path, "--repo", "sgl-project/sglang", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["labels_written"] == sum(len({(f["severity"], f["check"]) for f in i["findings"]}) for i in data["issues"])
    text = CliRunner().invoke(app, ["preflight-issues", "--db", path, "--repo", "sgl-project/sglang", "--no-labels"])
    assert text.exit_code == 0 and "[cfg.flags]" in text.output


def test_gpu_catalogue_rows_are_sourced():
    from bugatlas.preflight._data import load

    for row in load("gpus"):
        assert row["source"].startswith("https://") and row["memory_gib"] > 0, row


def test_a_scan_of_one_repository_keeps_the_other_repositories_labels(corpus_store):
    store_labels(corpus_store, scan_store(corpus_store))
    count = ("SELECT COUNT(*) AS n FROM labels WHERE source = 'preflight-retro' AND repo = ?")
    vllm = corpus_store.query(count, ("vllm-project/vllm",))[0]["n"]
    assert vllm > 0
    store_labels(corpus_store, scan_store(corpus_store, repos=["sgl-project/sglang"]))
    assert corpus_store.query(count, ("vllm-project/vllm",))[0]["n"] == vllm
    assert corpus_store.query(count, ("sgl-project/sglang",))[0]["n"] > 0

"""Launch commands of the three engines and YAML deployment files are parsed with the engines'
real flag names and aliases."""

from __future__ import annotations

import re

import pytest

from bugatlas.errors import BadInputError
from bugatlas.preflight.launch import load_deployment, parse_command, parse_tokens


def test_vllm_serve_positional_model_aliases_and_env():
    launch = parse_command(
        "CUDA_VISIBLE_DEVICES=0,1 vllm serve meta-llama/Meta-Llama-3-8B -tp 2 --max-model-len=32k "
        "--gpu-memory-utilization 0.85 --enforce-eager --kv-cache-dtype fp8 --some-new-flag x"
    )
    assert launch.engine == "vllm"
    assert launch.model == "meta-llama/Meta-Llama-3-8B"
    assert launch.settings["tensor_parallel_size"] == 2
    assert launch.settings["max_model_len"] == 32000  # vLLM: lower-case k = 1000
    assert launch.settings["gpu_memory_utilization"] == 0.85
    assert launch.settings["enforce_eager"] is True
    assert launch.env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert launch.unknown_flags == ["--some-new-flag"]
    assert launch.get("max_num_seqs") == 256  # the engine default


def test_vllm_api_server_module_with_python_path():
    launch = parse_command(["/opt/venv/bin/python3", "-m", "vllm.entrypoints.openai.api_server",
                            "--model", "/models/x", "--tensor_parallel_size", "4"])
    assert (launch.engine, launch.model, launch.settings["tensor_parallel_size"]) == ("vllm", "/models/x", 4)


def test_sglang_launch_server_flags():
    launch = parse_command("python -m sglang.launch_server --model-path Qwen/Qwen3-8B --tp 2 "
                           "--context-length 32768 --mem-fraction-static 0.8 --max-running-requests 64")
    assert launch.engine == "sglang"
    assert launch.model == "Qwen/Qwen3-8B"
    assert launch.get("tensor_parallel_size") == 2
    assert launch.get("max_model_len") == 32768
    assert launch.get("gpu_memory_utilization") == 0.8
    assert launch.get("max_num_seqs") == 64


def test_llama_server_short_flags_and_optional_switch_value():
    launch = parse_command("llama-server -m model.gguf -c 8192 -ngl 99 -fa on -np 4 -ctk q8_0")
    assert launch.engine == "llama.cpp"
    assert launch.model == "model.gguf"
    assert launch.get("max_model_len") == 8192
    assert launch.get("n_gpu_layers") == "99"
    assert launch.get("flash_attn") is True
    assert launch.get("max_num_seqs") == 4
    assert launch.get("cache_type_k") == "q8_0"
    assert parse_command("llama-server -m m.gguf -fa -c 512").get("max_model_len") == 512


def test_token_counts():
    assert parse_tokens("131072") == 131072
    assert parse_tokens("128K") == 131072
    assert parse_tokens("1k") == 1000
    with pytest.raises(ValueError):
        parse_tokens("lots")


def test_bad_values_and_unknown_engines_name_the_flag():
    with pytest.raises(BadInputError, match="--tensor-parallel-size expects a positive int"):
        parse_command("vllm serve m --tensor-parallel-size two")
    with pytest.raises(BadInputError, match="cannot tell the engine"):
        parse_command("ollama run llama3")
    with pytest.raises(BadInputError, match="needs a value"):
        parse_command("vllm serve m --max-model-len")


def test_vllm_config_file_merges_under_the_command_line(tmp_path):
    cfg = tmp_path / "vllm.yaml"
    cfg.write_text("tensor-parallel-size: 2\nmax_model_len: 4096\n")
    launch = parse_command(f"vllm serve m --config {cfg} --max-model-len 8192")
    assert launch.get("tensor_parallel_size") == 2
    assert launch.get("max_model_len") == 8192


def test_yaml_deployment_command_and_engine_forms(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("command: vllm serve meta-llama/Llama-3.1-8B --max-model-len 8192\n"
                 "args: {tensor-parallel-size: 2}\nmodel_config: llama-3.1-8b\n"
                 "env: {CUDA_VISIBLE_DEVICES: '0'}\n")
    launch, doc = load_deployment(a)
    assert launch.get("tensor_parallel_size") == 2 and launch.get("max_model_len") == 8192
    assert doc["model_config"] == "llama-3.1-8b" and launch.env["CUDA_VISIBLE_DEVICES"] == "0"
    b = tmp_path / "b.yaml"
    b.write_text("engine: sglang\nmodel: Qwen/Qwen3-8B\nargs: {tp: 2, context_length: 4096}\n")
    launch, _ = load_deployment(b)
    assert (launch.engine, launch.model, launch.get("tensor_parallel_size"), launch.get("max_model_len")) == (
        "sglang", "Qwen/Qwen3-8B", 2, 4096)
    c = tmp_path / "c.yaml"
    c.write_text("engine: vllm\nargs: {warp-speed: 9, max-model-len: 4096}\n")
    # a flag the table lacks is reported like one on a command line, not fatal (docs/preflight.md)
    launch, _ = load_deployment(c)
    assert launch.unknown_flags == ["--warp-speed"] and launch.get("max_model_len") == 4096


def _flags(cmd):
    from bugatlas.preflight import machine_from_mapping, run_preflight

    machine = machine_from_mapping({"gpus": [{"name": "L4", "memory_gib": 24, "compute_capability": "8.9"}]}, where="t")
    return [f for f in run_preflight(parse_command(cmd), machine, model_config="llama-3.1-8b").findings if f.check == "cfg.flags"]


def test_cfg_flags_typos_and_rejected_combinations():
    (f,) = _flags("vllm serve x --max-model-length 8192")
    assert f.severity == "warn" and "--max-model-len" in f.message
    (f,) = _flags("vllm serve x --max-model-len 8192 --some-plugin-flag 3")
    assert f.severity == "pass" and f.numbers["unknown_flags"] == ["--some-plugin-flag"]
    (f,) = _flags("vllm serve x --max-model-len 8192 --max-num-seqs 512 --max-num-batched-tokens 256")
    assert f.severity == "block"
    (f,) = _flags("vllm serve x --max-model-len 8192 --gpu-memory-utilization 90")
    assert f.severity == "block" and "outside" in f.message
    (f,) = _flags("llama-server -m x.gguf -ctv q8_0 -fa off")
    assert f.severity == "block"
    (f,) = _flags("llama-server -m x.gguf -ctk q8_0 -ctv q8_0")
    assert f.severity == "warn"
    (f,) = _flags("llama-server -m x.gguf -ctk q8_0 -ctv q8_0 -fa on")
    assert f.severity == "pass"


@pytest.mark.parametrize(("text", "message"), [
    ("command: 5\n", "command must be a string or a list"),
    ("engine: vllm\nargs: 5\n", "args must be a mapping"),
    ("command: vllm serve x\nenv: [A]\n", "env must be a mapping"),
    ("command: vllm serve x\nmodel_config: 5\n", "model_config must be"),
    ("env: [A]\ndeployments: [{command: vllm serve x}]\n", "env must be a mapping"),
])
def test_wrongly_typed_deployment_keys_are_one_line_errors(tmp_path, text, message):
    from bugatlas.preflight.launch import load_deployments

    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as err:
        load_deployments(path)
    assert str(path) in str(err.value)


def test_sglang_chunked_prefill_off_is_understood(tmp_path):
    # sgl-project/sglang#7693: `--chunked-prefill-size -1` (SGLang's documented "disable chunked
    # prefill") was refused as bad input, exit 2
    from tests.preflight.helpers import gpu_machine

    from bugatlas.preflight import load_machine, run_preflight

    cmd = ("python -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --context-length 32768 "
           "--chunked-prefill-size -1 --disable-radix-cache")  # fmt: skip
    launch = parse_command(cmd)
    assert launch.settings["max_num_batched_tokens"] == -1
    mem = next(f for f in run_preflight(launch, load_machine(gpu_machine(tmp_path))).findings
               if f.check == "res.gpu_memory")  # fmt: skip
    act = mem.numbers["overhead_bytes"]["activations"]
    # a whole 32,768-token prompt is one prefill batch: (4·3584 + 2·18944) × 2 bytes per token
    assert act == 32768 * (4 * 3584 + 2 * 18944) * 2


def test_unreadable_inputs_are_one_line_errors_naming_the_file(tmp_path):
    import subprocess
    import sys

    quote = tmp_path / "quote.yaml"
    quote.write_text("command: \"vllm serve 'meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192\"\n", encoding="utf-8")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    broken = tmp_path / "broken.yaml"
    broken.write_text("max-model-len: [1\n", encoding="utf-8")
    cases = [
        (["--config", str(quote)], "quote.yaml: launch command: cannot split it like a shell (No closing quotation)"),
        (["--config", str(binary)], "binary.yaml: cannot read deployment description"),
        (["--env", str(binary), "--", "vllm", "serve", "x"], "binary.yaml: cannot read machine description"),
        (["--", "vllm", "serve", "x", "--config", str(binary)], "binary.yaml: cannot read the --config file"),
        (["--", "vllm", "serve", "x", "--config", str(broken)], "broken.yaml: cannot read the --config file"),
        (["--", "vllm", "serve", "x", "--config", str(tmp_path)], "cannot read the --config file"),
    ]
    for args, message in cases:
        r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "preflight", "--no-examples", *args],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr[-500:])
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0], (args, r.stderr)


def test_parallel_sizes_below_one_and_negative_token_counts_are_refused():
    # -tp -2 died with "ValueError: min() arg is an empty sequence"; -tp 0 passed every check
    for cmd, message in (("vllm serve m -tp -2", "-tp expects a positive int, got '-2'"),
                         ("vllm serve m --tensor-parallel-size 0", "--tensor-parallel-size expects a positive int"),
                         ("python -m sglang.launch_server --model-path m --tp 2 --dp 0", "--dp expects a positive int"),
                         ("vllm serve m --max-model-len -1", "--max-model-len expects tokens, got '-1'"),
                         ("llama-server -m m.gguf -c -5", "-c expects tokens, got '-5'"),
                         ("python -m sglang.launch_server --model-path m --chunked-prefill-size -2",
                          "--chunked-prefill-size expects tokens (or -1), got '-2'")):  # fmt: skip
        with pytest.raises(BadInputError, match=re.escape(message)):
            parse_command(cmd)


def test_a_vllm_config_file_with_flags_preflight_does_not_know_is_checked(tmp_path):
    # vLLM reads any of its flags from --config FILE; one missing from preflight's table made
    # preflight refuse the whole launch ("unknown vllm setting 'seed'", exit 2)
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("max-model-len: 8192\nseed: 0\nenable-prefix-caching: true\nmax_num_seq: 4\n", encoding="utf-8")
    launch = parse_command(f"vllm serve meta-llama/Llama-3.1-8B-Instruct --config {cfg}")
    assert launch.get("max_model_len") == 8192
    assert launch.unknown_flags == ["--seed", "--enable-prefix-caching", "--max_num_seq"]
    warn = [f for f in _flags(f"vllm serve meta-llama/Llama-3.1-8B-Instruct --config {cfg}") if f.severity == "warn"]
    assert [f.numbers["closest"] for f in warn] == ["--max_num_seqs"]

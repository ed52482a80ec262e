"""Resource checks: parallel sizes, context, GPU and CPU memory, for each engine."""

from __future__ import annotations

import pytest

from bugatlas.preflight import machine_from_mapping, parse_command, run_preflight

GIB = 1024**3


def _machine(memory_gib=80, count=1, cc="9.0", name="NVIDIA H100 80GB HBM3", ram_gib=512):
    return machine_from_mapping({"gpus": [{"name": name, "memory_gib": memory_gib, "compute_capability": cc, "count": count}],
                                 "cpu_ram_gib": ram_gib}, where="test")


def _one(report, check_id):
    found = [f for f in report.findings if f.check == check_id]
    assert len(found) == 1, [f.message for f in found]
    return found[0]


def _run(cmd, machine, **kw):
    return run_preflight(parse_command(cmd), machine, **kw)


def test_cuda_visible_devices_limits_the_gpus():
    m = _machine(count=4)
    assert _one(_run("vllm serve meta-llama/Llama-3.1-70B --tp 4 --max-model-len 8192", m), "res.parallel_gpus").severity == "pass"
    f = _one(_run("CUDA_VISIBLE_DEVICES=0,1 vllm serve meta-llama/Llama-3.1-70B -tp 4 --max-model-len 8192", m), "res.parallel_gpus")
    assert f.severity == "block" and f.numbers["gpus_visible"] == 2
    f = _one(_run("vllm serve meta-llama/Llama-3.1-70B -tp 2 -pp 2 --data-parallel-size 2 --max-model-len 8192", m), "res.parallel_gpus")
    assert f.severity == "block" and f.numbers["gpus_needed"] == 8


@pytest.mark.parametrize(("model", "tp", "severity"), [
    ("qwen2.5-7b", 2, "pass"),      # 28 heads, 4 KV heads
    ("qwen2.5-7b", 8, "block"),     # 28 heads % 8 != 0
    ("qwen2.5-7b", 3, "block"),
    ("llama-3-70b", 8, "pass"),     # 64 heads, 8 KV heads
    ("gemma-3-1b", 2, "pass"),      # 1 KV head replicated over 2 shards
    ("deepseek-v3", 8, "pass"),     # MLA: heads only
])
def test_heads_divisibility(model, tp, severity):
    m = _machine(count=8)
    f = _one(_run(f"vllm serve x --tensor-parallel-size {tp} --max-model-len 4096", m, model_config=model), "res.parallel_heads")
    assert f.severity == severity, f.message
    if severity == "block":
        assert tp not in f.numbers["valid_tp_sizes"] and 1 in f.numbers["valid_tp_sizes"]


def test_pipeline_parallel_larger_than_layers():
    m = _machine(count=64)
    f = _one(_run("vllm serve x -pp 40 --max-model-len 4096", m, model_config="gemma-3-1b"), "res.parallel_heads")
    assert f.severity == "block" and "26 layers" in f.message


def test_kv_cache_pass_reports_concurrency_and_max_num_seqs_demand():
    f = _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 32768 --max-num-seqs 64", _machine()), "res.gpu_memory")
    assert f.severity == "pass"
    assert f.numbers["kv_one_sequence_bytes"] == 32768 * 128 * 1024
    assert f.numbers["kv_max_num_seqs_bytes"] == 64 * 32768 * 128 * 1024
    budget = f.numbers["budget_bytes"] - f.numbers["weights_per_gpu_bytes"] - sum(f.numbers["overhead_bytes"].values())
    assert f.numbers["full_length_sequences_that_fit"] == pytest.approx(budget / (32768 * 128 * 1024), abs=0.01)


def test_weights_alone_too_big_and_tensor_parallel_sharding():
    f = _one(_run("vllm serve meta-llama/Llama-3.1-70B --max-model-len 8192", _machine()), "res.gpu_memory")
    assert f.severity == "block" and "weights alone" in f.message
    ok = _one(_run("vllm serve meta-llama/Llama-3.1-70B -tp 4 --max-model-len 8192", _machine(count=4)), "res.gpu_memory")
    assert ok.severity == "pass"
    assert ok.numbers["weights_per_gpu_bytes"] == ok.numbers["weights_total_bytes"] // 4


def test_fp8_kv_cache_and_memory_utilization_change_the_verdict():
    m = _machine(memory_gib=24, cc="8.9", name="NVIDIA L4")
    cmd = "vllm serve meta-llama/Llama-3.1-8B --max-model-len 65536"
    assert _one(_run(cmd, m), "res.gpu_memory").severity == "block"
    fp8 = _one(_run(cmd.replace("65536", "40000") + " --kv-cache-dtype fp8", m), "res.gpu_memory")
    assert fp8.numbers["kv_bytes_per_token"] == 64 * 1024 and fp8.severity == "pass"
    low = _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 8192 --gpu-memory-utilization 0.5", m), "res.gpu_memory")
    assert low.severity == "block" and low.numbers["budget_bytes"] == 12 * GIB


def test_sglang_starts_with_a_smaller_kv_pool_so_it_warns():
    m = _machine(memory_gib=24, cc="8.9", name="NVIDIA L4")
    f = _one(_run("python -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B --context-length 65536", m), "res.gpu_memory")
    assert f.severity == "warn" and f.numbers["memory_utilization"] == 0.88


def test_cpu_offload_moves_weights_off_the_gpu():
    m = _machine(memory_gib=24, cc="8.9", name="NVIDIA L4", ram_gib=64)
    base = _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096", m), "res.gpu_memory")
    off = _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096 --cpu-offload-gb 8", m), "res.gpu_memory")
    # vLLM and SGLang read --cpu-offload-gb as GiB (cpu_offload_gb * 1024**3), not 10**9 bytes
    assert base.numbers["weights_per_gpu_bytes"] - off.numbers["weights_per_gpu_bytes"] == 8 * GIB
    ram = _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096 --cpu-offload-gb 8", m), "res.cpu_memory")
    assert ram.numbers["cpu_offload_bytes"] == 8 * GIB


def test_cpu_ram_for_loading():
    small = _machine(ram_gib=8)
    f = _one(_run("vllm serve meta-llama/Llama-3.1-70B -tp 1 --max-model-len 4096 --cpu-offload-gb 40", small), "res.cpu_memory")
    assert f.severity == "block"
    mid = _machine(ram_gib=16)
    assert _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096", mid), "res.cpu_memory").severity == "warn"
    assert _one(_run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096", _machine()), "res.cpu_memory").severity == "pass"


def test_context_beyond_rope_scaled_limit():
    f = _one(_run("vllm serve Qwen/Qwen3-8B --max-model-len 131072", _machine()), "res.context")
    assert f.severity == "block" and f.numbers["model_context"] == 40960
    default = _one(_run("vllm serve Qwen/Qwen3-8B", _machine()), "res.context")
    assert default.severity == "pass" and default.numbers["context_length"] == 40960


def test_no_gpu_skips_memory_and_blocks_gpu_engines():
    cpu = machine_from_mapping({"cpu_ram_gib": 64}, where="test")
    report = _run("vllm serve meta-llama/Llama-3.1-8B --max-model-len 4096", cpu)
    f = _one(report, "res.parallel_gpus")
    assert f.severity == "block" and "none visible" in f.message and "No CUDA GPUs" in f.why
    assert _one(report, "res.gpu_memory").severity == "skip"


def test_sglang_static_fraction_covers_weights_and_kv_only():
    m = _machine(memory_gib=24, cc="8.9", name="NVIDIA L4")
    f = _one(_run("python -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B --context-length 8192", m), "res.gpu_memory")
    assert f.severity == "pass"
    assert f.numbers["need_bytes"] == f.numbers["weights_per_gpu_bytes"] + f.numbers["kv_one_sequence_bytes"]
    tight = [x for x in _run("python -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B --context-length 8192 "
                             "--mem-fraction-static 0.97", m).findings if x.check == "res.gpu_memory"]
    assert [x.severity for x in tight] == ["warn"] and "left outside" in tight[0].message


def test_fp8_block_quantization_limits_tensor_parallel_slices():
    # DeepSeek-V3's experts are 2048 wide in 128×128 FP8 blocks: TP 32 leaves 64-wide slices
    m = _machine(count=32)
    f = _one(_run("vllm serve deepseek-ai/DeepSeek-V3 -tp 32 --max-model-len 4096", m), "res.parallel_heads")
    assert f.severity == "block" and "FP8 weight block 128×128" in f.message
    # expert parallelism keeps experts whole, but the 3 dense layers (18432 wide) are still sliced
    ep = _one(_run("vllm serve deepseek-ai/DeepSeek-V3 -tp 32 --enable-expert-parallel --max-model-len 4096", m), "res.parallel_heads")
    assert ep.severity == "block" and "dense MLP" in ep.message and "expert MLP" not in ep.message
    # SGLang slices the dense layers over --moe-dense-tp-size instead
    sg = _one(_run("python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3 --tp 32 --enable-ep-moe "
                   "--moe-dense-tp-size 1 --context-length 4096", m), "res.parallel_heads")
    assert sg.severity == "pass"
    assert _one(_run("vllm serve deepseek-ai/DeepSeek-V3 -tp 16 --max-model-len 4096", m), "res.parallel_heads").severity == "pass"


def test_only_with_no_matching_check_is_an_error_not_a_pass():
    m = _machine(count=1)
    cmd = "vllm serve Qwen/Qwen2.5-7B-Instruct --tensor-parallel-size 8"
    assert _run(cmd, m, only=["res"]).exit_code == 20
    with pytest.raises(Exception, match="--only rse: no check id starts with it") as err:
        _run(cmd, m, only=["rse"])  # a typo used to run nothing and pass with exit code 0
    from bugatlas.errors import BadInputError

    assert isinstance(err.value, BadInputError)


def test_ignored_or_unwritable_preflight_options_are_one_line_errors(tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True, timeout=120)

    env = tmp_path / "gpu.yaml"
    env.write_text("gpus: [{name: NVIDIA L4, memory_gib: 24, compute_capability: '8.9'}]\n")
    r = cli("preflight", "--env", str(env), "--python", sys.executable, "--", "vllm", "serve", "Qwen/Qwen2.5-7B-Instruct")
    assert r.returncode == 2 and "--python" in r.stderr  # --python was silently ignored with --env
    r = cli("preflight-env", "-o", str(tmp_path / "no" / "gpu.yaml"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_junit_into_a_missing_directory_is_refused_before_running(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "preflight", "--junit", str(tmp_path / "no" / "p.xml"),
                        "--model-config", "qwen2.5-7b", "--", "vllm", "serve", "Qwen/Qwen2.5-7B-Instruct"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--junit" in r.stderr and "Traceback" not in r.stderr


def test_junit_or_env_output_that_is_a_directory_is_one_line_error(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "preflight", "--junit", str(tmp_path),
                        "--model-config", "qwen2.5-7b", "--", "vllm", "serve", "Qwen/Qwen2.5-7B-Instruct"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "is a directory" in r.stderr and "Traceback" not in r.stderr, r.stderr[-400:]
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "preflight-env", "-o", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "--output" in r.stderr and "is a directory" in r.stderr and "Traceback" not in r.stderr


def test_a_repeated_cuda_visible_device_hides_every_gpu():
    """CUDA_VISIBLE_DEVICES=1,0,1 counted 3 GPUs on a 2-GPU machine and passed -tp 3. CUDA
    (and torch.cuda, which mirrors it) shows no device at all when an ordinal repeats, so the
    engine would find no GPU: preflight says so and names the repeated entry."""
    m = _machine(count=2)
    f = _one(_run("CUDA_VISIBLE_DEVICES=1,0,1 vllm serve meta-llama/Llama-3.1-8B -tp 2 --max-model-len 4096", m),
             "res.parallel_gpus")
    assert f.severity == "block" and f.numbers["gpus_visible"] == 0
    assert "lists GPU 1 twice" in f.message and "each GPU once" in f.fix
    assert m.visible_gpus("1,0,1") == [] and len(m.visible_gpus("1,0")) == 2
    cpp = _one(_run("CUDA_VISIBLE_DEVICES=0,0 llama-server -m /models/qwen2.5-7b-instruct-q4_k_m.gguf -ngl 99", m),
               "res.parallel_gpus")
    assert cpp.severity == "warn" and "lists GPU 0 twice" in cpp.message  # not a silent CPU run

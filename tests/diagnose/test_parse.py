"""The parser on hand-written logs of each family and on real logs of the shared corpus."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from bugatlas.diagnose.parse import extract_log, normalize_message, parse_log, signature_key

LOGS = Path(__file__).parent / "logs"


def parsed(name: str):
    return parse_log((LOGS / name).read_text())


@pytest.mark.parametrize(
    ("name", "family", "signature", "engine", "component"),
    [
        ("torch_oom.log", "torch_oom", "OutOfMemoryError: CUDA out of memory", "vllm", "Resource Manager"),
        ("torch_oom_other.log", "torch_oom", "OutOfMemoryError: CUDA out of memory", "sglang", "Resource Manager"),
        ("vllm_kv.log", "vllm_kv_cache",
         "ValueError: No available memory for the cache blocks. Try increasing 'gpu_memory_utilization' when initializing the engine",
         "vllm", "Resource Manager"),
        ("llamacpp_alloc.log", "llamacpp_alloc",
         "ggml_backend_cuda_buffer_type_alloc_buffer: allocating <SIZE> on device <N>: cudaMalloc failed: out of memory",
         "llama.cpp", "Resource Manager"),
        ("cuda_illegal.log", "cuda_error", "CUDA error: an illegal memory access was encountered", "sglang", "Operators"),
        ("nccl.log", "nccl_error",
         "NCCL error in: ..<PATH>:<N>, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version <N>",
         "vllm", "Communicator"),
        ("terminate.log", "cpp_abort", "terminate: std::runtime_error: unexpectedly reached end of file", "llama.cpp", None),
        ("ggml_assert_new.log", "ggml_assert", "GGML_ASSERT(src0->type == GGML_TYPE_F16) in ggml-cuda.cu", "llama.cpp", "Operators"),
        ("segfault.log", "segfault", "fatal signal: SIGSEGV", "vllm", "Operators"),
        ("module_not_found.log", "module_not_found", "ModuleNotFoundError: No module named 'torch'", "llama.cpp", "Setup Tools"),
        ("undefined_symbol.log", "undefined_symbol", "<PATH>: undefined symbol: _ZN3c104cuda9SetDeviceEi", "vllm", "Setup Tools"),
        ("argparse.log", "cli_usage", "argparse: unrecognized arguments: --enable_metrics", "sglang", "Engine Initializer"),
        ("truncated.log", "python_traceback",
         "truncated traceback at deepseek_v2.py:__init__: assert isinstance(layer, <MODEL>)", "vllm", None),
        ("chained.log", "python_exception", "RuntimeError: Failed to initialize the tokenizer for <MODEL>", "vllm", "Request Parser"),
    ],
)
def test_families(name, family, signature, engine, component):
    p = parsed(name)
    assert p.recognized
    assert p.family == family
    assert p.signature == signature
    assert p.signature_key == signature_key(signature)
    assert p.engine == engine
    if component is not None:
        assert p.component == component


def test_old_and_new_ggml_assert_share_a_signature():
    assert parsed("ggml_assert_new.log").signature == parsed("ggml_assert_old.log").signature


def test_cublas_status_is_a_cuda_error():
    p = parsed("cublas.log")
    assert p.family == "cuda_error"
    assert "CUBLAS_STATUS_NOT_SUPPORTED" in p.signature


def test_chained_exceptions_keep_their_relations_and_frames():
    p = parsed("chained.log")
    assert [(e.type, e.relation) for e in p.chain] == [
        ("KeyError", None), ("OSError", "cause"), ("RuntimeError", "context")
    ]
    assert p.chain[1].message.startswith("Can't load tokenizer")
    assert p.frames and p.frames[-1].func == "run_server" and p.frames[-1].project
    assert "OSError: Can't load tokenizer for <MODEL>. Make sure the name is correct" in p.secondary_signatures


def test_generic_wrapper_is_not_the_signature():
    # vLLM V1 ends with "Engine core initialization failed. See root cause above."
    p = parsed("vllm_kv.log")
    assert "Engine core" not in p.signature
    assert [f.func for f in p.frames][-1] == "check_enough_kv_cache_memory"


def test_log_prefixes_are_stripped_before_parsing_frames():
    p = parsed("vllm_kv.log")
    assert p.frames[0].file.endswith("vllm/v1/engine/core.py") and p.frames[0].line == 387


def test_thread_dump_frames_of_a_fatal_python_error():
    p = parsed("segfault.log")
    assert p.frames[-1].func == "forward_cuda"


def test_versions_from_collect_env_and_check_env():
    p = parsed("versions.log")
    assert not p.recognized
    assert p.versions == {
        "python": "3.12.7", "torch": "2.5.1+cu124", "cuda": "12.4", "driver": "550.127.05",
        "transformers": "4.46.3", "vllm": "0.6.4.post1", "sglang": "0.4.1.post3",
    }
    assert parsed("ggml_assert_new.log").versions["llama.cpp"] == "4589 (eb7cf15a)"


def test_nothing_recognizable():
    p = parsed("nothing.log")
    assert not p.recognized and p.signature is None and p.family is None


def test_normalization_abstracts_volatile_parts():
    a = "Tried to allocate 2.50 GiB at 0x7f3c9e416b4a in /home/a/x.py for Qwen/Qwen2-7B-Instruct run 3f2b9c1d-1111-2222-3333-444455556666"
    assert normalize_message(a) == "Tried to allocate <SIZE> at <HEX> in <PATH> for <MODEL> run <UUID>"
    # identifiers with digits keep them: fp32, c10d, float16 are not numbers
    assert normalize_message("to_fp32_cl c10d float16 layers.39.mlp") == "to_fp32_cl c10d float16 layers.<N>.mlp"


def test_same_failure_different_numbers_same_signature():
    one = parse_log("RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity)")
    two = parse_log("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.5 GiB. GPU 3 has a total capacity of 80 GiB")
    assert one.signature_key == two.signature_key


def test_warning_lines_are_not_the_failure():
    p = parse_log("WARNING: failed to allocate 552.00 MB of pinned memory: out of memory\nKeyError: 'model.layers.0.weight'")
    assert p.family == "python_exception"
    assert p.signature == "KeyError: 'model.layers.<N>.weight'"


def test_code_lines_in_a_traceback_are_not_messages():
    p = parsed("vllm_kv.log")
    assert all("raise ValueError" not in m.line for m in p.matches)


def test_extract_log_takes_fenced_blocks_with_errors():
    body = "I ran it.\n\n```\npip list\n```\n\n```\nTraceback (most recent call last):\nKeyError: 'x'\n```\nthanks"
    assert extract_log(body) == "Traceback (most recent call last):\nKeyError: 'x'\n"
    assert extract_log("It is slow, how to speed it up?") == ""


# -- real logs of the shared corpus -------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(shared_data):
    with gzip.open(shared_data / "serving-issues-2025.jsonl.gz") as fh:
        return {(r["repo"], r["number"]): r for r in map(orjson.loads, fh)}


@pytest.mark.parametrize(
    ("repo", "number", "family", "signature"),
    [
        ("ggml-org/llama.cpp", 1846, "ggml_assert",
         "GGML_ASSERT(tensor->src1 == NULL || tensor->src1->backend == GGML_BACKEND_CPU) in ggml.c"),
        ("ggml-org/llama.cpp", 1434, "cpp_abort", None),
        ("ggml-org/llama.cpp", 2503, "cuda_error", "CUDA error <N> at <FILE>:<N>: invalid resource handle"),
        ("ggml-org/llama.cpp", 4442, "cuda_error", "CUDA error <N> at <FILE>:<N>: invalid resource handle"),
        ("sgl-project/sglang", 86, "torch_oom", "OutOfMemoryError: CUDA out of memory"),
        ("vllm-project/vllm", 2248, "vllm_kv_cache", None),
        ("ggml-org/llama.cpp", 316, "module_not_found", "ModuleNotFoundError: No module named 'tqdm'"),
        ("ggml-org/llama.cpp", 289, "module_not_found", "ModuleNotFoundError: No module named 'tqdm'"),
        ("sgl-project/sglang", 1116, "nccl_error", None),
        ("vllm-project/vllm", 11122, "python_exception", None),
    ],
)
def test_real_corpus_logs(corpus, repo, number, family, signature):
    issue = corpus[(repo, number)]
    p = parse_log(extract_log(issue["body"]))
    assert p.recognized and p.family == family
    if signature:
        assert p.signature == signature


def test_real_vllm_keyerror_names_the_weight(corpus):
    p = parse_log(extract_log(corpus[("vllm-project/vllm", 11122)]["body"]))
    assert p.exception_type == "KeyError" and "gate_up_proj.qweight" in p.message
    assert p.engine == "vllm" and any(f.project for f in p.frames)


def test_corpus_parse_share(corpus):
    logs = [extract_log(r["body"]) for r in corpus.values()]
    logs = [l for l in logs if l]
    share = sum(parse_log(l).recognized for l in logs) / len(logs)
    assert len(logs) > 700 and share > 0.75


def test_markdown_bold_around_the_exception_line():
    p = parse_log("Traceback (most recent call last):\n  File \"/x/vllm/a.py\", line 3, in f\n    g()\n**RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x5120 and 4096x4096)**")
    assert p.signature == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (<N>x<N> and <N>x<N>)"


def test_windows_access_violation_is_a_fatal_signal():
    p = parse_log("An unhandled win32 exception occured in [5900] llama-quantize.exe")
    assert p.family == "segfault" and p.signature == "fatal signal: ACCESS_VIOLATION"


@pytest.mark.parametrize(
    ("log", "family", "signature"),
    [
        ("llama_model_load: error loading model: error loading model architecture: unknown model architecture: 'qwen3moe'\n"
         "llama_load_model_from_file: failed to load model",
         "llamacpp_load", "llama.cpp load: error loading model: error loading model architecture: unknown model architecture: <MODEL>"),
        ("CMake Error at CMakeLists.txt:95 (message):\n  CUDA Toolkit not found",
         "build_error", "CMake Error"),
        ("ggml/src/ggml-cuda/common.cuh:12:10: fatal error: cuda_fp16.h: No such file or directory",
         "build_error", "fatal error: <FILE>: No such file or directory"),
        ("torch.OutOfMemoryError: HIP out of memory. Tried to allocate 1.00 GiB. GPU 0 has a total capacity of 191.98 GiB",
         "hip_oom", "OutOfMemoryError: HIP out of memory"),
        ("ERROR:hf-to-gguf:Model Qwen2VLForConditionalGeneration is not supported",
         "conversion_error", "hf-to-gguf: Model <MODEL> is not supported"),
        ("[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600123 milliseconds before timing out.",
         "nccl_error", None),
        ("OSError: libcudart.so.12: cannot open shared object file: No such file or directory",
         "module_not_found", "OSError: <FILE>: cannot open shared object file: No such file or directory"),
        ("RuntimeError: CUDA error: no kernel image is available for execution on the device",
         "cuda_error", "CUDA error: no kernel image is available for execution on the device"),
        ("Process exited with code 139", "segfault", "fatal signal: SIGSEGV"),
    ],
)
def test_more_families(log, family, signature):
    p = parse_log(log)
    assert p.family == family, p.signature
    if signature is not None:
        assert p.signature == signature

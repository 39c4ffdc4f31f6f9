"""Captioning client vs a simulated vLLM: does the client keep the server busy?

The server (``caprl_index.testing.fake_vllm``, in its own process so its CPU is not counted) generates
with ``--max-num-seqs`` slots, each request holding a slot for ``latency + per_token * output tokens``
seconds, and queues the rest like vLLM. Its capacity for the run is ``busy slot-seconds / slots``; the
budget is a client that achieves >= 95% of it. Also reports the client's CPU time per request.

    python benchmarks/bench_captioning.py [--requests 500] [--slots 32] [--latency 0.2] [--per-token 0.002]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from caprl_index.captioning import VLLMCaptioner, open_captioner
from caprl_index.config import Settings
from caprl_index.testing.figures import figures


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "caprl_index.testing.fake_vllm", "--port", "0",
        "--max-num-seqs", str(args.slots), "--latency", str(args.latency), "--per-token", str(args.per_token),
        "--caption-words", str(args.min_words), str(args.max_words),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, url = proc.stdout.readline().split()
    assert ready == "ready", ready
    return proc, url


def server_stats(url: str) -> dict[str, Any]:
    root = url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/fake/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


async def caption_all(settings: Settings, count: int, size: tuple[int, int]) -> dict[str, float]:
    figs = figures(count, width=size[0], height=size[1])
    captioner = await open_captioner(settings, warn=print)
    assert isinstance(captioner, VLLMCaptioner), "the simulated vLLM was not found"
    cpu0, wall0, epoch0 = time.process_time(), time.perf_counter(), time.time()
    captions = await asyncio.gather(*(captioner.caption(f) for f in figs))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await captioner.aclose()
    assert all(c.source == "vllm" for c in captions), captioner.stats
    return {"wall_s": wall, "cpu_s": cpu, "requests": captioner.stats.requests, "epoch0": epoch0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--slots", type=int, default=32, help="server --max-num-seqs")
    parser.add_argument("--concurrency", type=int, default=64, help="client max_concurrency")
    parser.add_argument("--latency", type=float, default=0.2, help="fixed seconds per request")
    parser.add_argument("--per-token", type=float, default=0.002, help="seconds per output token")
    parser.add_argument("--min-words", type=int, default=60, help="shortest caption (tokens)")
    parser.add_argument("--max-words", type=int, default=300, help="longest caption (tokens)")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 360), help="image width height")
    args = parser.parse_args()

    proc, url = start_server(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(vllm_url=[url], qdrant_path=Path(tmp) / "qdrant", max_concurrency=args.concurrency)
            run = asyncio.run(caption_all(settings, args.requests, tuple(args.size)))
        stats = server_stats(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report(args, run, stats)


def batch_makespan(stats: dict[str, Any], slots: int) -> float:
    """Wall time of the same requests fed by a perfect client: FIFO onto the first free slot."""
    free = [0.0] * slots
    for start, end in sorted(stats["slot_times"]):
        heapq.heappush(free, heapq.heappop(free) + (end - start))
    return max(free)


def steady_utilisation(stats: dict[str, Any], slots: int) -> float:
    """Slot use from the first generation to the last one's start: while work was left to do."""
    times = stats["slot_times"]
    t0, t1 = min(s for s, _ in times), max(s for s, _ in times)
    used = sum(max(0.0, min(end, t1) - start) for start, end in times)
    return used / (slots * (t1 - t0))


def idle_causes(stats: dict[str, Any], slots: int) -> tuple[float, float, float]:
    """Until the last request arrived: fractions of slot-time idle with requests waiting at the server
    (the server's own overhead), idle with nothing waiting (the client fell behind), and mean in flight."""
    timeline = stats["timeline"]
    last_arrival = max(t for (_, prev, _), (t, n, _) in itertools.pairwise(timeline) if n > prev)
    server_idle = client_idle = in_flight_s = 0.0
    for (t, in_flight, running), (t_next, _, _) in itertools.pairwise(timeline):
        dt = max(0.0, min(t_next, last_arrival) - t)
        free, waiting = slots - running, in_flight - running
        server_idle += min(free, waiting) * dt
        client_idle += max(0, free - waiting) * dt
        in_flight_s += in_flight * dt
    window = last_arrival - timeline[0][0]
    return server_idle / (slots * window), client_idle / (slots * window), in_flight_s / window


def report(args: argparse.Namespace, run: dict[str, float], stats: dict[str, Any]) -> None:
    ideal = stats["busy_s"] / args.slots  # every slot busy from first request to last
    makespan = batch_makespan(stats, args.slots)
    service = stats["busy_s"] / stats["requests"]
    print(f"requests {stats['requests']}, slots {args.slots}, client max_concurrency {args.concurrency}")
    print(f"mean service time {service * 1000:.0f} ms  (latency {args.latency}s + {args.per_token}s/token)")
    print(f"server capacity   {args.slots / service:8.1f} req/s  (slots / mean service time)")
    print(f"client achieved   {run['requests'] / run['wall_s']:8.1f} req/s  (wall {run['wall_s']:.2f}s)")
    print(f"ratio vs capacity {ideal / run['wall_s']:8.3f}  (busy slot-seconds / slots / wall)")
    print(f"ratio vs batch    {makespan / run['wall_s']:8.3f}  (perfect client on the same requests / wall; >= 0.95)")
    server_idle, client_idle, mean_in_flight = idle_causes(stats, args.slots)
    print(f"until the last request arrived: mean in flight {mean_in_flight:.1f} (client limit {args.concurrency});")
    print(
        f"  slots idle with requests waiting {server_idle:.3f} (server), with none waiting {client_idle:.3f} (client)"
    )
    print(f"steady slot use   {steady_utilisation(stats, args.slots):8.3f}  (while requests remained; >= 0.95)")
    times = stats["slot_times"]
    first, last = min(s for s, _ in times) - run["epoch0"], max(e for _, e in times) - run["epoch0"]
    arrived = stats["timeline"][0][0] - run["epoch0"]
    print(f"first request arrived at {arrived:.2f}s, first generation at {first:.2f}s, last ends at {last:.2f}s")
    print(f"  of the client's {run['wall_s']:.2f}s")
    print(f"slot utilisation  {utilisation(stats, args.slots)}  (tenths of the run)")
    print(f"server max running {stats['max_running']}, max in flight {stats['max_in_flight']}")
    print(f"client CPU        {run['cpu_s'] / run['requests'] * 1000:8.2f} ms/request")
    print(f"client CPU share  {run['cpu_s'] / run['wall_s']:8.3f}  of one core")


def utilisation(stats: dict[str, Any], slots: int, bins: int = 10) -> str:
    """Fraction of slot-seconds used in each tenth of the server's active window."""
    times = stats["slot_times"]
    t0, t1 = min(s for s, _ in times), max(e for _, e in times)
    width = (t1 - t0) / bins
    used = [0.0] * bins
    for start, end in times:
        for b in range(bins):
            lo, hi = t0 + b * width, t0 + (b + 1) * width
            used[b] += max(0.0, min(end, hi) - max(start, lo))
    return " ".join(f"{u / (width * slots):.2f}" for u in used)


if __name__ == "__main__":
    main()

"""Timing GPU work: CUDA-graph replay timed with CUDA events, median of repeats.

Each measured call is replayed from a captured graph, so launch gaps do not count, and
calls rotate over several copies of their operands so that data larger than nothing but
the L2 cache is read from device memory, as in a real forward pass (METHOD.md).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

L2_BYTES = 64 * 2**20  # covers Hopper's 50-60 MB L2


def check_this_gpu(gpu: str) -> None:
    """Refuse to measure under the label `gpu` on a device that is another GPU (`hardware.check_device`)."""
    from servesim.hardware import check_device, get_gpu

    props = torch.cuda.get_device_properties(0)
    check_device(get_gpu(gpu), props.name, props.total_memory / 2**30)


def copies_for(nbytes: float, cap: int = 16) -> int:
    """Operand copies to rotate so that one pass over them overflows the L2 cache twice."""
    return max(1, min(cap, int(2 * L2_BYTES // max(nbytes, 1)) + 1))


def time_calls(calls: list[Callable[[], object]], target_s: float = 2e-3, repeats: int = 5) -> float:
    """Median seconds of one call, cycling through `calls` (operand copies of one operation)."""
    if not torch.cuda.is_available():
        return _time_cpu(calls, repeats)
    for fn in calls[:2]:
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn = calls[0]
    fn()
    torch.cuda.synchronize()
    rough = max(time.perf_counter() - t0, 1e-6)
    reps = max(len(calls), min(200, int(target_s / rough) + 1))

    def body():
        for i in range(reps):
            calls[i % len(calls)]()

    graph = capture(body)
    seconds = replay_seconds(graph, repeats) / reps
    del graph
    return seconds


def time_long(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median seconds of a call long enough (tens of ms and more) that launch gaps do not matter: one warm-up,
    then each call timed with CUDA events; no graph, whose capture would cost as many calls again."""
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3)
    return statistics.median(samples)


def capture(fn: Callable[[], object]) -> torch.cuda.CUDAGraph:
    """Capture `fn` in a CUDA graph, after a warm-up run on a side stream as capture requires."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    return graph


def replay_seconds(graph: torch.cuda.CUDAGraph, repeats: int = 5) -> float:
    """Median seconds of one replay of `graph`, timed with CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(repeats):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3)
    return statistics.median(samples)


def _time_cpu(calls, repeats):
    samples = []
    for i in range(repeats):
        t0 = time.perf_counter()
        calls[i % len(calls)]()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)

"""`servesim profile --device cpu`: measure this machine's CPU with PyTorch.

Tables, each row appended as it is measured (a run cut short keeps what it finished):
- gemm.csv: bf16 `F.linear` of [M x K] @ [K x N] over token counts M, for the (N, K) shapes of Llama-3.2-1B
  and two of Llama-3.1-8B, at each thread count;
- membw.csv: streaming bandwidth (read, copy, triad) over arrays well past the caches;
- attention.csv: SDPA prefill and decode attention of Llama-3.2-1B's heads, as `kernels` runs them;
- overhead.csv: seconds of one eager op on tiny tensors (dispatch, not work);
- meta.json: the CPU, its cores, the thread counts, the torch version and the date.

Timing is wall-clock (`time.perf_counter`): warm-up calls, then the median of repeats.
torch is imported lazily: the package runs without it.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from servesim.errors import ServesimError

MODEL = "llama-3.2-1b"  # the model `servesim validate --device cpu` runs; its shapes are measured in full
OTHER = "llama-3.1-8b"  # a larger catalog model: two of its shapes, at fewer token counts
M_FULL = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
M_QUICK = (1, 16, 256)
LM_HEAD_MAX_M = 256  # the LM head multiplies one row per sequence, never a whole prompt
OTHER_MAX_M = 512
MIB = 2**20
TARGET_S = 0.25  # repeats per point: about this much time, between MIN_REPEATS and MAX_REPEATS
MIN_REPEATS, MAX_REPEATS = 3, 25
FLUSH_BYTES = 256 * MIB  # 8x the 32 MiB L3 of this Zen 4 VM (lscpu), past any desktop or server L3 slice
MAX_COPIES = 32
BW_FULL = (256 * MIB, 1024 * MIB)  # 8x and 32x the L3
BW_QUICK = (256 * MIB,)

TABLES = {
    "gemm.csv": ["threads", "shape", "m", "n", "k", "seconds"],
    "membw.csv": ["threads", "op", "bytes", "seconds", "gbs"],
    "attention.csv": ["threads", "kind", "batch", "q_len", "ctx", "hq", "hkv", "d", "seconds"],
    "overhead.csv": ["threads", "op", "seconds"],
}


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (a VM may hide the exact part), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The vector-unit flags that decide which bf16 kernels run (avx512_bf16, amx_bf16, ...)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))


def parse_threads(text: str | None, have: int | None = None) -> list[int]:
    """Thread counts from "1,2"; each must be 1..this machine's cores (default: 1 and all of them)."""
    have = have or cores()
    if text is None or not str(text).strip():
        return sorted({1, have})
    out = []
    for part in str(text).split(","):
        try:
            n = int(part)
        except ValueError:
            raise ServesimError(f"--threads: '{part.strip()}' is not a whole number; pass e.g. --threads 1,{have}") \
                from None  # fmt: skip
        if not 1 <= n <= have:
            raise ServesimError(f"--threads: {n} is outside 1..{have} (this machine has {have} cores); pass thread "
                                f"counts from 1 to {have}")  # fmt: skip
        out.append(n)
    return sorted(set(out))


class _Table:
    """A CSV written header first, then one flushed row at a time."""

    def __init__(self, path: Path, columns: list[str]):
        self.columns = columns
        self.file = path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(columns)
        self.file.flush()

    def add(self, **row) -> None:
        self.writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in (row[c] for c in self.columns)])
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def median_seconds(fn: Callable[[], object], warmup: int = 1) -> float:
    """Median wall time of `fn` after `warmup` calls; as many repeats as fit in about TARGET_S."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    n = max(MIN_REPEATS, min(MAX_REPEATS, int(TARGET_S / max(first, 1e-9))))
    times = [first]
    for _ in range(n - 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def gemm_shapes(quick: bool = False) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """(label, N, K, token counts) of the GEMMs measured: the model's linear layers as `decoder` runs them."""
    from servesim.models import get_model

    ms = M_QUICK if quick else M_FULL
    m = get_model(MODEL)
    shapes = [("qkv", (m.heads + 2 * m.kv_heads) * m.head_dim, m.hidden), ("o_proj", m.hidden, m.heads * m.head_dim),
              ("gate_up", 2 * m.intermediate, m.hidden), ("down", m.hidden, m.intermediate)]  # fmt: skip
    out = [(f"{MODEL}:{label}", n, k, ms) for label, n, k in shapes]
    out.append((f"{MODEL}:lm_head", m.vocab, m.hidden, tuple(x for x in ms if x <= LM_HEAD_MAX_M)))
    if not quick:
        b = get_model(OTHER)
        for label, n, k in (("qkv", (b.heads + 2 * b.kv_heads) * b.head_dim, b.hidden), ("down", b.hidden,
                                                                                         b.intermediate)):  # fmt: skip
            out.append((f"{OTHER}:{label}", n, k, tuple(x for x in ms if x <= OTHER_MAX_M)))
    return out


def run_cpu_profile(out: Path, threads: list[int], quick: bool = False, device: str = "cpu", log=print) -> Path:
    """Measure this CPU into `out` (see the module docstring); returns the folder."""
    try:
        import torch
    except ImportError:
        raise ServesimError("servesim profile --device cpu needs PyTorch: pip install 'servesim[profile]'") from None
    from servesim.profiler import kernels

    out.mkdir(parents=True, exist_ok=True)
    meta = {"kind": "cpu", "device": device, "cpu": cpu_name(), "cores": cores(), "threads": threads,
            "flags": cpu_flags(), "torch": torch.__version__, "torch_cpu_capability":
            torch.backends.cpu.get_cpu_capability(), "quick": quick, "date": time.strftime("%Y-%m-%d"),
            "timing": f"time.perf_counter, median of {MIN_REPEATS}-{MAX_REPEATS} repeats after a warm-up",
            "complete": False}  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    tables = {name: _Table(out / name, cols) for name, cols in TABLES.items()}
    kernels.probe("cpu")  # the grouped-query path prefill attention takes here
    before = torch.get_num_threads()
    torch.manual_seed(0)
    try:
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            log(f"{time.strftime('%H:%M:%S')} {n_threads} thread(s)")
            _overhead(torch, tables["overhead.csv"], n_threads)
            _bandwidth(torch, tables["membw.csv"], n_threads, quick, log)
            _gemms(torch, tables["gemm.csv"], n_threads, quick, log)
            _attention(torch, kernels, tables["attention.csv"], n_threads, quick)
    finally:
        torch.set_num_threads(before)
        for t in tables.values():
            t.close()
    meta["complete"] = True
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"profile written to {out}")
    return out


def _overhead(torch, table: _Table, threads: int) -> None:
    """Seconds per call of eager ops whose work is negligible: the dispatch every op pays."""
    import torch.nn.functional as F

    x = torch.randn(1, 8, dtype=torch.bfloat16)
    w = torch.randn(8, 8, dtype=torch.bfloat16)
    norm = torch.ones(8, dtype=torch.bfloat16)
    calls = 200
    for op, fn in (("add", lambda: x + x), ("mul", lambda: x * x), ("linear", lambda: F.linear(x, w)),
                   ("rms_norm", lambda: F.rms_norm(x, (8,), norm)), ("cat", lambda: torch.cat((x, x), -1)),
                   ("silu", lambda: F.silu(x))):  # fmt: skip
        def loop(fn=fn):
            for _ in range(calls):
                fn()

        table.add(threads=threads, op=op, seconds=median_seconds(loop) / calls)


def _bandwidth(torch, table: _Table, threads: int, quick: bool, log) -> None:
    """GB/s of streaming kernels over fp32 arrays 8x to 32x the 32 MiB L3 (bytes counted as read + written)."""
    sizes = BW_QUICK if quick else BW_FULL
    for size in sizes:
        for op, nbytes, fn in _streams(torch, size):
            s = median_seconds(fn)
            table.add(threads=threads, op=op, bytes=nbytes, seconds=s, gbs=nbytes / s / 1e9)
        log(f"  bandwidth {size // MIB} MiB arrays: measured")


def _streams(torch, size: int) -> list:
    """(op, bytes moved, call) of read, copy and triad over fp32 arrays of `size` bytes each."""
    a, b, c = (torch.rand(size // 4) for _ in range(3))
    return [("read", size, lambda: a.sum()), ("copy", 2 * size, lambda: b.copy_(a)),
            ("triad", 3 * size, lambda: torch.add(b, c, alpha=3.0, out=a))]  # fmt: skip


def _gemms(torch, table: _Table, threads: int, quick: bool, log) -> None:
    import torch.nn.functional as F

    for label, n, k, ms in gemm_shapes(quick):
        # a forward pass streams every layer's weights from DRAM: calls rotate over copies of the weight that
        # together overflow the last-level cache, so a small one is not timed out of L3
        copies = max(1, min(MAX_COPIES, -(-FLUSH_BYTES // (2 * n * k))))
        ws = [torch.randn(n, k, dtype=torch.bfloat16) * 0.02 for _ in range(copies)]
        turn = iter(range(1 << 62))
        for m in ms:
            x = torch.randn(m, k, dtype=torch.bfloat16)
            s = median_seconds(lambda x=x, ws=ws, turn=turn: F.linear(x, ws[next(turn) % len(ws)]))
            table.add(threads=threads, shape=label, m=m, n=n, k=k, seconds=s)
        log(f"  gemm {label} ({n} x {k}): {len(ms)} token counts")
        del ws


def _attention(torch, kernels, table: _Table, threads: int, quick: bool) -> None:
    """Causal prefill of q_len tokens and decode of `batch` requests at `ctx`, Llama-3.2-1B's heads."""
    from servesim.models import get_model

    m = get_model(MODEL)
    hq, hkv, d = m.heads, m.kv_heads, m.head_dim
    bf = torch.bfloat16
    for q_len in (128, 512) if quick else (128, 512, 1024, 2048):
        q = torch.randn(q_len, hq, d, dtype=bf)
        kv = torch.randn(1, hkv, q_len, d, dtype=bf)
        s = median_seconds(lambda q=q, kv=kv: kernels.attention_prefill(q, kv, kv))
        table.add(threads=threads, kind="prefill", batch=1, q_len=q_len, ctx=0, hq=hq, hkv=hkv, d=d, seconds=s)
    grid = ((1, 512), (8, 512)) if quick else ((1, 512), (1, 2048), (8, 512), (8, 2048), (16, 2048))
    for batch, ctx in grid:
        q = torch.randn(batch, hq, d, dtype=bf)
        kv = torch.randn(batch, hkv, ctx, d, dtype=bf)
        s = median_seconds(lambda q=q, kv=kv: kernels.attention_decode(q, kv, kv))
        table.add(threads=threads, kind="decode", batch=batch, q_len=1, ctx=ctx, hq=hq, hkv=hkv, d=d, seconds=s)


# ----- `servesim validate --device cpu`: a real forward pass against the CPU model -----
THIS_CPU = "epyc-zen4-2vcpu"  # the catalog entry of this project's CI machine (validate's default device)
CPU_GRID = ([("prefill", L, 0, 0, 0) for L in (16, 32, 64, 128, 256, 512)]
            + [("decode", 0, 0, B, C) for B in (1, 4, 16) for C in (128, 512, 2048)]
            + [("mixed", 64, 0, 4, 512), ("mixed", 256, 0, 16, 1024)])  # fmt: skip
CPU_REPEATS = 3  # a 512-token prefill of a 1B model takes about 3 s on 2 cores


def cpu_device(name: str | None):
    """The catalog CPU validation is priced for (default: this CI machine); refuses a non-CPU device."""
    from servesim.hardware import get_gpu

    g = get_gpu(name or THIS_CPU)
    if g.kind != "cpu":
        raise ServesimError(f"--gpu {g.name} is a {g.kind}, not a CPU; with --device cpu name a catalog CPU (e.g. "
                            f"{THIS_CPU}) or add this machine's with --gpu-file")  # fmt: skip
    return g


def measure_cpu(spec, threads: int, grid=None, repeats: int = CPU_REPEATS, log=print, keep: Path | None = None):
    """Time Decoder forward passes (random bf16 weights, all layers) on the CPU at `threads` threads; one row per
    batch of `grid` (kind, chunk, chunk_ctx, decodes, decode_ctx), written to `keep` as measured."""
    try:
        import torch
    except ImportError:
        raise ServesimError("servesim validate --device cpu needs PyTorch: pip install 'servesim[profile]'") from None
    import pandas as pd

    from servesim.profiler import kernels
    from servesim.profiler.decoder import Decoder
    from servesim.profiler.validate import save

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kernels.probe("cpu")
    rows = []
    try:
        with torch.inference_mode():
            dec = Decoder(spec, device="cpu")
            for kind, L, C, B, Cd in grid or CPU_GRID:
                inp = dec.inputs(L, C, B, Cd)
                seconds = median_seconds(lambda inp=inp: dec.forward(inp), warmup=1) if repeats else 0.0
                rows.append(dict(model=spec.name, gpu="cpu", threads=threads, dtype="bf16", kv_dtype="bf16",
                                 kind=kind, chunk=L, chunk_ctx=C, decodes=B, decode_ctx=Cd, measured_s=seconds))
                if keep is not None:
                    save(pd.DataFrame(rows), keep)
                log(f"{time.strftime('%H:%M:%S')} {kind:8s} chunk {L}:{C} decodes {B}x{Cd}: {seconds * 1e3:.1f} ms")
                del inp
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows)


def validate_cpu(model: str, device: str | None, threads: int | None, out: Path | None, log=print,
                 profile_dir: Path | None = None, grid=None):  # fmt: skip
    """`servesim validate --device cpu`: measure the grid here, then compare with the CPU model fitted to the
    device's profile ("profiled") and with the roofline at GPU default parameters ("roofline")."""
    from servesim.models import get_model
    from servesim.perf.cpu import cpu_perf_model
    from servesim.perf.profiled import describe
    from servesim.perf.roofline import RooflineModel
    from servesim.profiler.validate import compare, save

    spec, g = get_model(model), cpu_device(device)
    n = parse_threads(str(threads), cores())[0] if threads is not None else cores()
    if spec.is_moe or spec.is_mla:
        raise ServesimError(f"CPU validation runs dense models; {spec.name} is MoE or MLA (try llama-3.2-1b)")
    df = measure_cpu(spec, n, grid, log=log, keep=out)
    df["gpu"] = g.name
    fitted = cpu_perf_model(spec, g, profile_dir=profile_dir, threads=n)
    df = compare(df, {"profiled": fitted, "roofline": RooflineModel(spec, fitted.gpu)})
    if out is not None:
        save(df, out)
    log(f"profiled: {describe(fitted)}; roofline: GPU default parameters")
    return df, f"{spec.name} on {g.name} ({n} thread{'s' * (n > 1)}): measured vs predicted forward time"

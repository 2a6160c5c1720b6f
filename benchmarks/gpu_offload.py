"""What offloading costs on a real GPU: PCIe copies, weights streamed layer by layer, KV streamed per layer.

    PYTHONPATH=src python benchmarks/gpu_offload.py --out $OUT/offload        # on a CUDA GPU, ~5 minutes
    python benchmarks/gpu_offload.py --smoke --out /tmp/offload_smoke          # tiny shapes, runs on CPU too

Self-contained (PyTorch only, no servesim import), so it runs on any machine with torch. Writes, appending
each row as soon as it is measured (a run cut short keeps what it finished):

- copy.csv: host<->device copies, h2d and d2h, pinned and pageable host memory, 4 KiB..1 GiB chunks, one copy
  at a time ("single") and many in a row ("batch"); an h2d and a d2h at once on two streams ("duplex"); and,
  last of all, pinned batches replayed from a CUDA graph ("batch_graph").
- weights.csv: Llama-3.1-8B layers (bf16; qkv, o, gate_up, down: 218 M parameters, 436 MB a layer) kept in
  pinned host memory and streamed into two GPU buffers, layer l+1 copied on a side stream while layer l
  computes on the main stream (stream_prefetch) or copy then compute on one stream (stream_serial); the same
  compute with all weights resident (resident); the compute alone on the two buffers (compute_alone); the
  32 copies alone (copy_alone). Decode batches at 512 and 2048 cached tokens, prefill chunks.
- kv.csv: weights resident, each layer's K and V (B requests x C tokens) streamed from pinned host memory per
  layer (kv_stream_prefetch, kv_stream_serial) against KV resident on the GPU (kv_resident).
- disk.csv: sequential write and read of a 4 GiB file on the local disk (buffered after write, after
  posix_fadvise DONTNEED, and O_DIRECT), to see what a local NVMe read gives.
- meta.json: torch/CUDA versions, the GPU, `nvidia-smi -q` PCIe/link lines, timings of allocation, errors.

Times: CUDA events, warm-up iterations dropped, median of the repeats (min and max recorded too). An
iteration is a whole forward pass (32 layers plus a resident LM head); in the streamed modes the pipeline
runs continuously across iterations (during layer 31 the next iteration's layer 0 is fetched), so the
median is the steady-state iteration time. Every streamed mode's final hidden state is compared with the
resident mode's (same kernels on the same bytes: it must match exactly unless the ordering is broken).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import mmap
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
DT = torch.bfloat16
T0 = time.perf_counter()
META: dict = {"errors": []}


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------- CUDA or a sequential stand-in on the CPU
class _FakeEvent:
    def __init__(self):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def elapsed_time(self, other):
        return (other.t - self.t) * 1e3


class _FakeStream:
    def wait_event(self, ev):
        pass

    def wait_stream(self, s):
        pass


def Event():
    return torch.cuda.Event(enable_timing=True) if CUDA else _FakeEvent()


def Stream():
    return torch.cuda.Stream() if CUDA else _FakeStream()


def current_stream():
    return torch.cuda.current_stream() if CUDA else _FakeStream()


def on(stream):
    return torch.cuda.stream(stream) if CUDA else contextlib.nullcontext()


def sync():
    if CUDA:
        torch.cuda.synchronize()


def pinned_empty(n: int, dtype) -> torch.Tensor:
    return torch.empty(n, dtype=dtype, pin_memory=CUDA)


class Sink:
    """A CSV file whose rows are flushed to disk as they are written."""

    def __init__(self, path: Path, cols: list[str]):
        self.f = open(path, "w", newline="")  # noqa: SIM115 - kept open for appending rows
        self.w = csv.DictWriter(self.f, cols, restval="")
        self.w.writeheader()
        self.f.flush()

    def row(self, **kw) -> None:
        self.w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in kw.items()})
        self.f.flush()
        os.fsync(self.f.fileno())


def med(xs: list[float]) -> tuple[float, float, float]:
    return statistics.median(xs), min(xs), max(xs)


class Clock:
    def __init__(self, budget: float):
        self.budget = budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - T0)


# ---------------------------------------------------------------- meta
def sh(cmd: str, timeout: float = 20) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"failed: {e}"


LINK_QUERY = (
    "nvidia-smi --query-gpu=name,pcie.link.gen.current,pcie.link.gen.max,pcie.link.gen.gpucurrent,"
    "pcie.link.gen.hostmax,pcie.link.width.current,pcie.link.width.max --format=csv"
)


def meta_start(out: Path, args) -> None:
    META.update(
        date=datetime.datetime.now(datetime.UTC).isoformat(),
        argv=sys.argv,
        python=sys.version.split()[0],
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if CUDA else None,
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        smoke=args.smoke,
    )
    cpu = [ln.split(":", 1)[1].strip() for ln in sh("grep -m1 'model name' /proc/cpuinfo").splitlines() if ":" in ln]
    META["cpu_model"] = cpu[0] if cpu else None
    META["meminfo"] = sh("grep -E 'MemTotal|MemAvailable|Hugepagesize' /proc/meminfo")
    if CUDA:
        p = torch.cuda.get_device_properties(0)
        META["gpu"] = dict(
            name=p.name,
            total_memory=p.total_memory,
            sm_count=p.multi_processor_count,
            capability=f"{p.major}.{p.minor}",
        )
        META["nvidia_smi_pcie_link"] = sh('nvidia-smi -q | grep -i -A3 "PCIe\\|Link"')
        META["nvidia_smi_link_query_idle"] = sh(LINK_QUERY)
        META["nvidia_smi_header"] = sh("nvidia-smi | head -12")
        META["nvidia_smi_topo"] = sh("nvidia-smi topo -m")
    write_meta(out)


def write_meta(out: Path) -> None:
    META["elapsed_s"] = round(time.perf_counter() - T0, 1)
    (out / "meta.json").write_text(json.dumps(META, indent=1, default=str))


def error(part: str, e: BaseException) -> None:
    tb = traceback.format_exc()
    log(f"ERROR in {part}: {type(e).__name__}: {e}")
    print(tb, flush=True)
    META["errors"].append({"part": part, "error": f"{type(e).__name__}: {e}", "traceback": tb[-3000:]})


# ---------------------------------------------------------------- (a) copies
COPY_COLS = [
    "mode",
    "direction",
    "pinned",
    "chunk_bytes",
    "copies",
    "bytes",
    "seconds",
    "seconds_min",
    "seconds_max",
    "wall_seconds",
    "gbps",
    "reps",
]


def _time_copies(pairs, reps: int, warm: int = 1) -> tuple[list[float], list[float]]:
    """Event and wall seconds of each repeat of the copies in pairs, issued back to back on the current stream."""
    ev_t, wall_t = [], []
    s = current_stream()
    for r in range(warm + reps):
        sync()
        e0, e1 = Event(), Event()
        w0 = time.perf_counter()
        e0.record(s)
        for d, src in pairs:
            d.copy_(src, non_blocking=True)
        e1.record(s)
        sync()
        w = time.perf_counter() - w0
        if r >= warm:
            ev_t.append(e0.elapsed_time(e1) / 1e3)
            wall_t.append(w)
    return ev_t, wall_t


def part_copy(out: Path, sizes: list[int], clock: Clock) -> dict:
    sink = Sink(out / "copy.csv", COPY_COLS)
    maxb = sizes[-1]
    log(f"(a) copies: allocating {maxb / GiB:.2f} GiB x 2 on the GPU, pinned and pageable host")
    t = time.perf_counter()
    dev = torch.empty(maxb, dtype=torch.uint8, device=DEV).random_(0, 256)
    dev2 = torch.empty(maxb, dtype=torch.uint8, device=DEV).random_(0, 256)
    pin = pinned_empty(maxb, torch.uint8)
    pin.copy_(dev)
    pin2 = pinned_empty(maxb, torch.uint8)
    pin2.copy_(dev2)
    page = torch.empty(maxb, dtype=torch.uint8)
    page.copy_(dev)  # touches every page
    sync()
    META["copy_alloc_s"] = round(time.perf_counter() - t, 2)
    batch_target = min(GiB, maxb)
    headline = {}
    for chunk in sizes:
        if clock.left() < 60:
            log("(a) out of time, stopping the size sweep")
            break
        copies = max(4, min(2048, batch_target // chunk))
        offs = [(i * chunk) % maxb for i in range(copies)]
        for pinned in (True, False):
            host = pin if pinned else page
            for direction in ("h2d", "d2h"):

                def pair(o, host=host, direction=direction, chunk=chunk, dev=dev):
                    h, d = host[o : o + chunk], dev[o : o + chunk]
                    return (d, h) if direction == "h2d" else (h, d)

                big = chunk >= 64 * MiB
                ev, wall = _time_copies([pair(0)], reps=5 if big else 20, warm=2)
                m, lo, hi = med(ev)
                sink.row(
                    mode="single",
                    direction=direction,
                    pinned=int(pinned),
                    chunk_bytes=chunk,
                    copies=1,
                    bytes=chunk,
                    seconds=m,
                    seconds_min=lo,
                    seconds_max=hi,
                    wall_seconds=statistics.median(wall),
                    gbps=chunk / m / 1e9,
                    reps=len(ev),
                )
                ev, wall = _time_copies([pair(o) for o in offs], reps=3, warm=1)
                m, lo, hi = med(ev)
                sink.row(
                    mode="batch",
                    direction=direction,
                    pinned=int(pinned),
                    chunk_bytes=chunk,
                    copies=copies,
                    bytes=chunk * copies,
                    seconds=m,
                    seconds_min=lo,
                    seconds_max=hi,
                    wall_seconds=statistics.median(wall),
                    gbps=chunk * copies / m / 1e9,
                    reps=len(ev),
                )
                headline[(direction, pinned, chunk)] = chunk * copies / m / 1e9
        log(
            f"(a) chunk {chunk:>11,d} B: "
            + ", ".join(
                f"{d} {'pin' if p else 'page'} {headline.get((d, p, chunk), 0):.2f} GB/s"
                for p in (True, False)
                for d in ("h2d", "d2h")
            )
        )

    # the link while copying (the link can train down when idle)
    if CUDA:
        try:
            proc = subprocess.Popen(LINK_QUERY, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            t = time.perf_counter()
            while proc.poll() is None and time.perf_counter() - t < 8:
                dev.copy_(pin, non_blocking=True)
                sync()
            META["nvidia_smi_link_query_busy"] = proc.communicate(timeout=10)[0].strip()
        except Exception as e:  # noqa: BLE001
            error("link query", e)

    # duplex: an h2d and a d2h at once on two streams
    chunk = min(256 * MiB, maxb // 4)
    n = 8
    offs = [(i * chunk) % maxb for i in range(n)]
    h2d = [(dev[o : o + chunk], pin[o : o + chunk]) for o in offs]
    d2h = [(pin2[o : o + chunk], dev2[o : o + chunk]) for o in offs]
    s1, s2, main = Stream(), Stream(), current_stream()
    res = {k: [] for k in ("h2d_alone", "d2h_alone", "h2d_in_pair", "d2h_in_pair", "pair_total")}
    for r in range(4):
        for which in ("h2d", "d2h", "both"):
            sync()
            e0, e1, e2, e3 = Event(), Event(), Event(), Event()
            e0.record(main)
            if which in ("h2d", "both"):
                s1.wait_stream(main)
                with on(s1):
                    for d, src in h2d:
                        d.copy_(src, non_blocking=True)
                e1.record(s1)
            if which in ("d2h", "both"):
                s2.wait_stream(main)
                with on(s2):
                    for d, src in d2h:
                        d.copy_(src, non_blocking=True)
                e2.record(s2)
            if which in ("h2d", "both"):
                main.wait_stream(s1)
            if which in ("d2h", "both"):
                main.wait_stream(s2)
            e3.record(main)
            sync()
            if r == 0:
                continue
            if which == "h2d":
                res["h2d_alone"].append(e0.elapsed_time(e1) / 1e3)
            elif which == "d2h":
                res["d2h_alone"].append(e0.elapsed_time(e2) / 1e3)
            else:
                res["h2d_in_pair"].append(e0.elapsed_time(e1) / 1e3)
                res["d2h_in_pair"].append(e0.elapsed_time(e2) / 1e3)
                res["pair_total"].append(e0.elapsed_time(e3) / 1e3)
    for k, v in res.items():
        m, lo, hi = med(v)
        b = chunk * n * (2 if k == "pair_total" else 1)
        sink.row(
            mode="duplex",
            direction=k,
            pinned=1,
            chunk_bytes=chunk,
            copies=n * (2 if k == "pair_total" else 1),
            bytes=b,
            seconds=m,
            seconds_min=lo,
            seconds_max=hi,
            gbps=b / m / 1e9,
            reps=len(v),
        )
        headline[("duplex", k)] = b / m / 1e9
    log("(a) duplex GB/s: " + ", ".join(f"{k} {headline[('duplex', k)]:.2f}" for k in res))
    del dev, dev2, pin, pin2, page
    _free_host()
    return headline


def part_copy_graph(out: Path, sizes: list[int], clock: Clock) -> None:
    """Pinned batches captured in a CUDA graph and replayed (no launch gaps); last, since capture may fail."""
    if not CUDA:
        return
    path = out / "copy.csv"
    f = open(path, "a", newline="")  # noqa: SIM115
    w = csv.DictWriter(f, COPY_COLS, restval="")
    maxb = min(sizes[-1], 256 * MiB)
    dev = torch.empty(maxb, dtype=torch.uint8, device=DEV).random_(0, 256)
    pin = pinned_empty(maxb, torch.uint8)
    pin.copy_(dev)
    for chunk in [c for c in sizes if c <= 16 * MiB]:
        if clock.left() < 10:
            break
        copies = max(4, min(2048, maxb // chunk))
        offs = [(i * chunk) % maxb for i in range(copies)]
        for direction in ("h2d", "d2h"):
            pairs = [
                (
                    (dev[o : o + chunk], pin[o : o + chunk])
                    if direction == "h2d"
                    else (pin[o : o + chunk], dev[o : o + chunk])
                )
                for o in offs
            ]
            sync()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for d, src in pairs:
                    d.copy_(src, non_blocking=True)
            ts = []
            for r in range(4):
                sync()
                e0, e1 = Event(), Event()
                e0.record()
                g.replay()
                e1.record()
                sync()
                if r:
                    ts.append(e0.elapsed_time(e1) / 1e3)
            m, lo, hi = med(ts)
            w.writerow(
                dict(
                    mode="batch_graph",
                    direction=direction,
                    pinned=1,
                    chunk_bytes=chunk,
                    copies=copies,
                    bytes=chunk * copies,
                    seconds=f"{m:.6g}",
                    seconds_min=f"{lo:.6g}",
                    seconds_max=f"{hi:.6g}",
                    gbps=f"{chunk * copies / m / 1e9:.6g}",
                    reps=len(ts),
                )
            )
            f.flush()
            del g
    f.close()
    log("(a') graph-replayed pinned batches written")


def _free_host() -> None:
    sync()
    for name in ("_host_emptyCache",):
        fn = getattr(torch._C, name, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                fn()


# ---------------------------------------------------------------- the model
@dataclass
class Shape:
    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128
    inter: int = 14336
    layers: int = 32
    vocab: int = 128256

    @property
    def parts(self) -> list[tuple[int, int]]:  # (out, in) of qkv, o, gate_up, down, as nn.Linear stores them
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return [(q + 2 * kv, self.hidden), (self.hidden, q), (2 * self.inter, self.hidden), (self.hidden, self.inter)]

    @property
    def layer_elems(self) -> int:
        return sum(o * i for o, i in self.parts)


def weight_views(flat: torch.Tensor, s: Shape) -> list[torch.Tensor]:
    out, at = [], 0
    for o, i in s.parts:
        out.append(flat[at : at + o * i].view(o, i))
        at += o * i
    return out


DECODE_BACKENDS: list = []


def attn_decode(q, k, v):
    """q [B, Hq, 1, D]; k, v [B, Hkv, C, D] -> [B, Hq, 1, D]; split-KV backends first, as servesim's decoder."""
    if DECODE_BACKENDS:
        from torch.nn.attention import sdpa_kernel

        with sdpa_kernel(DECODE_BACKENDS, set_priority=True):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


def setup_attention() -> None:
    global DECODE_BACKENDS
    if not CUDA:
        return
    from torch.nn.attention import SDPBackend

    DECODE_BACKENDS = [
        getattr(SDPBackend, n)
        for n in ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")
        if hasattr(SDPBackend, n)
    ]
    q = torch.randn(4, 32, 1, 128, device=DEV, dtype=DT)
    k = torch.randn(4, 8, 700, 128, device=DEV, dtype=DT)
    v = torch.randn_like(k)
    ref = F.scaled_dot_product_attention(
        q.double(), k.double().repeat_interleave(4, 1), v.double().repeat_interleave(4, 1)
    )
    got = attn_decode(q, k, v).double()
    META["decode_attention_rel_err"] = float((got - ref).norm() / ref.norm())
    META["decode_backends"] = [b.name for b in DECODE_BACKENDS]
    from torch.nn.attention import sdpa_kernel

    q = torch.randn(1, 32, 256, 128, device=DEV, dtype=DT)
    k = torch.randn(1, 8, 256, 128, device=DEV, dtype=DT)
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):  # which can run prefill as timed
        try:
            with sdpa_kernel([getattr(SDPBackend, name)]):
                F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
            META[f"prefill_gqa_{name.lower()}"] = "runs"
        except Exception as e:  # noqa: BLE001
            META[f"prefill_gqa_{name.lower()}"] = f"{type(e).__name__}: {str(e)[:120]}"


def layer_fn(x, w, k, v, s: Shape, phase: str):
    """One Llama layer (RMSNorm without weights, the four GEMMs, attention, SiLU-gated MLP, residuals)."""
    qkv_w, o_w, gu_w, d_w = w
    T = x.shape[0]
    qd, kd = s.heads * s.head_dim, s.kv_heads * s.head_dim
    qkv = F.linear(F.rms_norm(x, (s.hidden,)), qkv_w)
    if phase == "decode":  # one new token for each of T requests over its cache k, v [T, Hkv, C, D]
        q = qkv[:, :qd].reshape(T, s.heads, 1, s.head_dim)
        a = attn_decode(q, k, v).reshape(T, qd)
    else:  # one sequence of T tokens, causal, no earlier context
        q = qkv[:, :qd].view(T, s.heads, s.head_dim).transpose(0, 1).unsqueeze(0)
        kk = qkv[:, qd : qd + kd].view(T, s.kv_heads, s.head_dim).transpose(0, 1).unsqueeze(0)
        vv = qkv[:, qd + kd :].view(T, s.kv_heads, s.head_dim).transpose(0, 1).unsqueeze(0)
        a = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=True)
        a = a.squeeze(0).transpose(0, 1).reshape(T, qd)
    x = x + F.linear(a, o_w)
    gu = F.linear(F.rms_norm(x, (s.hidden,)), gu_w)
    h = F.silu(gu[:, : s.inter]) * gu[:, s.inter :]
    return x + F.linear(h, d_w)


def SyncEvent():
    """An event for ordering only (no timing), which may be recorded and waited on inside a graph capture."""
    return torch.cuda.Event() if CUDA else _FakeEvent()


def _iteration(mode, L, compute, host, dbuf, resident, main, side, copy_ev, comp_ev, head, in_graph=False):
    """Issue one forward pass (L layers and the head) in the given mode; returns its output.

    In stream_prefetch the copy of layer l+1 is issued on the side stream before layer l computes; it waits
    until layer l-1 (the last reader of that buffer) is done, and layer l waits for its own copy. During the
    last layer the next pass's layer 0 is fetched, so passes issued back to back form one pipeline. Inside a
    graph capture the side stream forks from and joins the capturing stream, and layer 0's buffer was filled
    by the previous replay (or a copy before the first), which finished before this replay starts.
    """
    x = compute.x0
    if in_graph and mode == "stream_prefetch":
        side.wait_stream(main)
    for lyr in range(L):
        b = lyr % 2
        if mode == "resident":
            src = resident[lyr]
        elif mode == "compute_alone":
            src = dbuf[b]
        elif mode == "stream_serial":
            dbuf[b].copy_(host[lyr], non_blocking=True)
            src = dbuf[b]
        elif mode == "stream_prefetch":
            nl = (lyr + 1) % L
            nb = nl % 2
            if not (in_graph and lyr == 0):
                side.wait_event(comp_ev[nb])  # layer l-1 has finished reading buffer nb
            with on(side):
                dbuf[nb].copy_(host[nl], non_blocking=True)
            copy_ev[nb].record(side)
            if not (in_graph and lyr == 0):
                main.wait_event(copy_ev[b])  # layer l's data has arrived
            src = dbuf[b]
        else:
            raise ValueError(mode)
        x = compute(lyr, src, x)
        if mode == "stream_prefetch":
            comp_ev[b].record(main)
    if in_graph and mode == "stream_prefetch":
        main.wait_stream(side)
    return head(x) if head is not None else x


def run_mode(mode: str, n_iter: int, warm: int, L: int, compute, host, dbuf, resident, main, side, head=None):
    """Seconds of each of n_iter iterations (warm ones dropped), the last iteration's output, and the relative
    difference between the first timed and the last iteration's outputs (each starts from the same input).

    compute(l, src, x) -> x runs layer l with src the flat GPU tensor holding layer l's streamed item.
    Modes: resident (src = resident[l]), compute_alone (src = dbuf[l % 2], no copies), stream_serial (copy
    host[l] into dbuf[l % 2] on the main stream, then compute), stream_prefetch (copy layer l+1 on the side
    stream while layer l computes, events ordering both), copy_alone (the L copies back to back, side stream).
    A mode ending in _graph captures one iteration in a CUDA graph and replays it n_iter times (no launch
    gaps, so the GPU's own time; stream_prefetch_graph pipelines within a pass and fetches the next pass's
    layer 0 during the last layer).
    """
    assert L % 2 == 0, "two buffers alternate; an even layer count keeps the wrap-around in step"
    evs = [Event() for _ in range(n_iter + 1)]
    out, first, self_diff = None, None, float("nan")
    sync()
    if mode == "copy_alone":
        evs[0].record(side)
        with on(side):
            for it in range(n_iter):
                for lyr in range(L):
                    dbuf[lyr % 2].copy_(host[lyr], non_blocking=True)
                evs[it + 1].record(side)
        sync()
    elif mode.endswith("_graph"):
        base = mode[: -len("_graph")]
        copy_ev, comp_ev = [SyncEvent(), SyncEvent()], [SyncEvent(), SyncEvent()]
        cap = Stream()  # warm up on the capture stream first (per-stream library workspaces), as capture needs
        cap.wait_stream(current_stream())
        with on(cap):
            _iteration("stream_serial" if base == "stream_prefetch" else base, L, compute, host, dbuf, resident, cap,
                       side, copy_ev, comp_ev, head)  # fmt: skip
        sync()
        if base == "stream_prefetch":
            dbuf[0].copy_(host[0], non_blocking=True)
        sync()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=cap):
            static = _iteration(
                base, L, compute, host, dbuf, resident, cap, side, copy_ev, comp_ev, head, in_graph=True
            )
        sync()
        cur = current_stream()
        g.replay()  # the first warm-up replay, whose output is kept for the self check
        first = static.clone()
        sync()
        evs[0].record(cur)
        for it in range(n_iter - 1):
            g.replay()
            evs[it + 1].record(cur)
        sync()
        out = static.clone()
        self_diff = rel_diff(out, first)
        del g, static
        torch.cuda.empty_cache()
        ts = [evs[i].elapsed_time(evs[i + 1]) / 1e3 for i in range(n_iter - 1)][max(warm - 1, 0) :]
        return ts, out, self_diff
    else:
        copy_ev, comp_ev = [SyncEvent(), SyncEvent()], [SyncEvent(), SyncEvent()]
        if mode == "stream_prefetch":
            with on(side):
                dbuf[0].copy_(host[0], non_blocking=True)
            copy_ev[0].record(side)
        evs[0].record(main)
        for it in range(n_iter):
            out = _iteration(mode, L, compute, host, dbuf, resident, main, side, copy_ev, comp_ev, head)
            evs[it + 1].record(main)
            if it == warm:
                first = out
        sync()
        self_diff = rel_diff(out, first)
    ts = [evs[i].elapsed_time(evs[i + 1]) / 1e3 for i in range(n_iter)][warm:]
    return ts, out, self_diff


def rel_diff(a, b) -> float:
    if a is None or b is None:
        return float("nan")
    a, b = a.float(), b.float()
    return float((a - b).norm() / max(b.norm(), 1e-30))


MODES = (  # (mode, iterations, of which warm-up)
    ("compute_alone", 7, 2),
    ("resident", 7, 2),
    ("stream_serial", 4, 1),
    ("stream_prefetch", 4, 1),
    ("compute_alone_graph", 7, 2),
    ("resident_graph", 7, 2),
    ("stream_serial_graph", 4, 1),
    ("stream_prefetch_graph", 4, 1),
)


def measure_modes(sink, fields: dict, prefix: str, copy_alone: float, copy_bytes: int, L, comp, host, dbuf,
                  resident, main, side, head, graphs: bool = True) -> dict:  # fmt: skip
    """Time every mode of MODES on one configuration, writing a row for each; returns the medians by mode.

    compute_seconds_alone of a row is compute_alone's (eager rows) or compute_alone_graph's (graph rows);
    check_rel_diff compares the row's output with the resident mode's of the same kind; self_rel_diff
    compares the mode's first timed and last iterations (nonzero: the kernels are not deterministic).
    """
    r, refs = {}, {}
    for mode, n_iter, warm in MODES:
        graph = mode.endswith("_graph")
        if graph and not (graphs and CUDA):
            continue
        kind = "graph" if graph else "eager"
        try:
            ts, o, self_diff = run_mode(mode, n_iter, warm, L, comp, host, dbuf, resident, main, side, head)
        except Exception as e:  # noqa: BLE001 - a mode that fails (a graph that cannot be captured) is noted
            error(f"{prefix}{mode} {fields}", e)
            sink.row(mode=prefix + mode, **fields, note=f"failed: {type(e).__name__}: {str(e)[:150]}")
            sync()
            continue
        m, lo, hi = med(ts)
        r[mode] = m
        base = mode.removesuffix("_graph")
        if base == "resident":
            refs[kind] = o
        if base == "compute_alone":
            r["compute_" + kind] = m
        comp_alone = r.get("compute_" + kind, float("nan"))
        streamed = base.startswith("stream")
        sink.row(
            mode=prefix + mode,
            **fields,
            seconds=m,
            copy_seconds_alone=copy_alone,
            compute_seconds_alone=comp_alone,
            seconds_min=lo,
            seconds_max=hi,
            reps=len(ts),
            copy_bytes=copy_bytes if streamed else 0,
            overlap_vs_max=m / max(copy_alone, comp_alone) if streamed else "",
            overlap_vs_sum=m / (copy_alone + comp_alone) if streamed else "",
            check_rel_diff=rel_diff(o, refs.get(kind)) if base != "compute_alone" else "",
            self_rel_diff=self_diff,
            finite=int(bool(torch.isfinite(o).all())),
        )
    return r


WEIGHT_COLS = [
    "mode",
    "phase",
    "tokens",
    "batch",
    "ctx",
    "seconds",
    "copy_seconds_alone",
    "compute_seconds_alone",
    "seconds_min",
    "seconds_max",
    "reps",
    "copy_bytes",
    "overlap_vs_max",
    "overlap_vs_sum",
    "check_rel_diff",
    "self_rel_diff",
    "finite",
    "note",
]


class _Compute:
    """Callable layer compute with the starting hidden state attached (x0)."""

    def __init__(self, fn, x0):
        self.fn, self.x0 = fn, x0

    def __call__(self, lyr, src, x):
        return self.fn(lyr, src, x)


def part_weights(out: Path, s: Shape, decode_cfgs, prefill_cfgs, clock: Clock, st: dict) -> dict:
    sink = Sink(out / "weights.csv", WEIGHT_COLS)
    L, n = s.layers, s.layer_elems
    log(
        f"(b) weights: {L} layers x {n * 2 / 1e6:.1f} MB; generating on the GPU, pinning "
        f"{L * n * 2 / GiB:.2f} GiB of host memory"
    )
    t = time.perf_counter()
    res_big = torch.empty(L * n, dtype=DT, device=DEV)
    g = torch.Generator(device=DEV).manual_seed(0)
    for lyr in range(L):  # per layer, so generation needs no float32 temporary of the whole model
        res_big[lyr * n : (lyr + 1) * n].normal_(0, 0.02, generator=g)
    sync()
    t1 = time.perf_counter()
    host_big = pinned_empty(L * n, DT)
    t2 = time.perf_counter()
    host_big.copy_(res_big)
    sync()
    st["pin_weights_s"] = META["pin_weights_alloc_s"] = round(t2 - t1, 2)
    META["weights_setup_s"] = round(time.perf_counter() - t, 2)
    log(f"(b) pinned alloc {t2 - t1:.1f} s, setup {time.perf_counter() - t:.1f} s")
    host = [host_big[lyr * n : (lyr + 1) * n] for lyr in range(L)]
    resident = [res_big[lyr * n : (lyr + 1) * n] for lyr in range(L)]
    st.update(res_big=res_big, resident=resident, host_big=host_big)
    dbuf = [torch.empty(n, dtype=DT, device=DEV).normal_(0, 0.02) for _ in range(2)]
    lm_head = torch.empty(s.vocab, s.hidden, dtype=DT, device=DEV).normal_(0, 0.02)
    st["lm_head"] = lm_head
    main, side = current_stream(), Stream()
    copy_bytes = L * n * 2

    # the bare copy of all layers, measured once here and once at the end
    ts, _, _ = run_mode("copy_alone", 6, 1, L, None, host, dbuf, None, main, side)
    copy_alone, lo, hi = med(ts)
    sink.row(
        mode="copy_alone",
        seconds=copy_alone,
        copy_seconds_alone=copy_alone,
        seconds_min=lo,
        seconds_max=hi,
        reps=len(ts),
        copy_bytes=copy_bytes,
    )
    log(f"(b) copy of all {L} layers alone: {copy_alone * 1e3:.1f} ms = {copy_bytes / copy_alone / 1e9:.2f} GB/s")
    summary = {"copy_alone": copy_alone, "rows": []}

    cfgs = [("decode", B, C) for B, C in decode_cfgs] + [("prefill", T, T) for T in prefill_cfgs]
    for phase, a, b in cfgs:
        if clock.left() < 45:
            log(f"(b) out of time before {phase} {a}x{b}")
            break
        torch.manual_seed(1)
        if phase == "decode":
            B, C, T = a, b, a
            k = torch.randn(B, s.kv_heads, C, s.head_dim, device=DEV, dtype=DT)
            v = torch.randn_like(k)
        else:
            B, C, T = 1, b, a
            k = v = None
        x0 = torch.randn(T, s.hidden, device=DEV, dtype=DT)
        comp = _Compute(lambda lyr, src, x, k=k, v=v, ph=phase: layer_fn(x, weight_views(src, s), k, v, s, ph), x0)

        def head(x, phase=phase):
            rows = x if phase == "decode" else x[-1:]
            return F.linear(F.rms_norm(rows, (s.hidden,)), lm_head)

        fields = dict(phase=phase, tokens=T, batch=B, ctx=C)
        r = measure_modes(sink, fields, "", copy_alone, copy_bytes, L, comp, host, dbuf, resident, main, side, head)
        compute_alone = r["compute_alone"]
        del k, v, comp
        summary["rows"].append((phase, T, B, C, r, copy_alone))
        log(
            f"(b) {phase:7s} T={T:5d} B={B:4d} C={C:5d}: resident {r['resident'] * 1e3:8.2f} ms, serial "
            f"{r['stream_serial'] * 1e3:8.2f}, prefetch {r['stream_prefetch'] * 1e3:8.2f}, compute alone "
            f"{compute_alone * 1e3:8.2f}, copy alone {copy_alone * 1e3:8.2f}; prefetch/max "
            f"{r['stream_prefetch'] / max(copy_alone, compute_alone):.3f}; graph: resident "
            f"{r.get('resident_graph', float('nan')) * 1e3:.2f}, serial "
            f"{r.get('stream_serial_graph', float('nan')) * 1e3:.2f}, prefetch "
            f"{r.get('stream_prefetch_graph', float('nan')) * 1e3:.2f}, compute alone "
            f"{r.get('compute_alone_graph', float('nan')) * 1e3:.2f}"
        )
    ts, _, _ = run_mode("copy_alone", 4, 1, L, None, host, dbuf, None, main, side)
    m, lo, hi = med(ts)
    sink.row(
        mode="copy_alone_end",
        seconds=m,
        copy_seconds_alone=m,
        seconds_min=lo,
        seconds_max=hi,
        reps=len(ts),
        copy_bytes=copy_bytes,
    )
    summary["copy_alone_end"] = m
    del dbuf, host, host_big
    st.pop("host_big", None)
    _free_host()
    return summary


KV_COLS = [
    "mode",
    "batch",
    "ctx",
    "tokens",
    "seconds",
    "copy_seconds_alone",
    "compute_seconds_alone",
    "seconds_min",
    "seconds_max",
    "reps",
    "kv_bytes_per_layer",
    "copy_bytes",
    "host_buffers",
    "overlap_vs_max",
    "overlap_vs_sum",
    "check_rel_diff",
    "self_rel_diff",
    "finite",
    "note",
]


def part_kv(out: Path, s: Shape, cfgs, cap_bytes: int, clock: Clock, st: dict) -> list:
    sink = Sink(out / "kv.csv", KV_COLS)
    L = s.layers
    resident_w = st["resident"]
    lm_head = st["lm_head"]
    per_max = max(2 * B * s.kv_heads * C * s.head_dim for B, C in cfgs)
    cap = max(min(cap_bytes // 2, L * per_max), 2 * per_max)  # elements
    log(f"(c) KV: pinning {cap * 2 / GiB:.2f} GiB of host memory, {cap * 2 / GiB:.2f} GiB on the GPU")
    t = time.perf_counter()
    gpu_big = torch.empty(cap, dtype=DT, device=DEV).normal_()
    t1 = time.perf_counter()
    host_big = pinned_empty(cap, DT)
    META["pin_kv_alloc_s"] = round(time.perf_counter() - t1, 2)
    host_big.copy_(gpu_big)
    dbig = torch.empty(2 * per_max, dtype=DT, device=DEV).normal_()
    sync()
    META["kv_setup_s"] = round(time.perf_counter() - t, 2)
    main, side = current_stream(), Stream()
    rows = []
    for B, C in cfgs:
        if clock.left() < 40:
            log(f"(c) out of time before B={B} C={C}")
            break
        per = 2 * B * s.kv_heads * C * s.head_dim
        nbuf = min(L, cap // per)
        host = [host_big[(lyr % nbuf) * per : ((lyr % nbuf) + 1) * per] for lyr in range(L)]
        resident = [gpu_big[(lyr % nbuf) * per : ((lyr % nbuf) + 1) * per] for lyr in range(L)]  # same bytes as host
        dbuf = [dbig[:per], dbig[per : 2 * per]]
        torch.manual_seed(2)
        x0 = torch.randn(B, s.hidden, device=DEV, dtype=DT)
        shape = (B, s.kv_heads, C, s.head_dim)

        def fn(lyr, src, x, per=per, shape=shape):
            kv = src.view(2, *shape)
            return layer_fn(x, weight_views(resident_w[lyr], s), kv[0], kv[1], s, "decode")

        comp = _Compute(fn, x0)

        def head(x):
            return F.linear(F.rms_norm(x, (s.hidden,)), lm_head)

        copy_bytes = L * per * 2
        ts, _, _ = run_mode("copy_alone", 4, 1, L, None, host, dbuf, None, main, side)
        copy_alone = med(ts)[0]
        sink.row(
            mode="kv_copy_alone",
            batch=B,
            ctx=C,
            tokens=B,
            seconds=copy_alone,
            copy_seconds_alone=copy_alone,
            seconds_min=min(ts),
            seconds_max=max(ts),
            reps=len(ts),
            kv_bytes_per_layer=per * 2,
            copy_bytes=copy_bytes,
            host_buffers=nbuf,
        )
        fields = dict(batch=B, ctx=C, tokens=B, kv_bytes_per_layer=per * 2, host_buffers=nbuf)
        r = measure_modes(sink, fields, "kv_", copy_alone, copy_bytes, L, comp, host, dbuf, resident, main, side, head)
        compute_alone = r["compute_alone"]
        rows.append((B, C, r, copy_alone))
        log(
            f"(c) B={B:3d} C={C:5d} KV/layer {per * 2 / MiB:8.1f} MiB: resident {r['resident'] * 1e3:8.2f} ms, "
            f"serial {r['stream_serial'] * 1e3:8.2f}, prefetch {r['stream_prefetch'] * 1e3:8.2f}, copy alone "
            f"{copy_alone * 1e3:8.2f} ({copy_bytes / copy_alone / 1e9:.1f} GB/s), "
            f"compute alone {compute_alone * 1e3:8.2f}; graph: resident "
            f"{r.get('resident_graph', float('nan')) * 1e3:.2f}, "
            f"serial {r.get('stream_serial_graph', float('nan')) * 1e3:.2f}, prefetch "
            f"{r.get('stream_prefetch_graph', float('nan')) * 1e3:.2f}, compute alone "
            f"{r.get('compute_alone_graph', float('nan')) * 1e3:.2f}"
        )
    del gpu_big, host_big, dbig
    _free_host()
    return rows


# ---------------------------------------------------------------- (d) disk
def part_disk(out: Path, size: int, clock: Clock, cap_s: float = 10.0) -> None:
    sink = Sink(out / "disk.csv", ["step", "path", "bytes", "seconds", "gbps", "note"])
    cands = []
    for d in (Path.cwd(), Path("/tmp"), Path("/var/tmp")):
        try:
            stv = os.statvfs(d)
            free = stv.f_bavail * stv.f_frsize
            fstype = sh(f"stat -f -c %T {d}")
            cands.append((d, free, fstype))
        except OSError:
            pass
    META["disk_candidates"] = [(str(d), f, t) for d, f, t in cands]
    META["disk_df"] = sh("df -hT / /tmp . 2>/dev/null")
    META["disk_lsblk"] = sh("lsblk -o NAME,SIZE,ROTA,TYPE,MOUNTPOINT,MODEL 2>/dev/null")
    META["disk_mounts"] = sh("grep -v -E 'cgroup|proc|sysfs|devpts|mqueue' /proc/mounts | head -30")
    pick = [c for c in cands if c[2] not in ("tmpfs", "ramfs") and c[1] > size + 2 * GiB]
    if not pick:
        sink.row(step="skipped", note="no non-tmpfs directory with room")
        return
    d, free, fstype = pick[0]
    path = d / "gpu_offload_disk_test.bin"
    block = 16 * MiB
    buf = os.urandom(block)
    try:
        # write, then fsync
        t = time.perf_counter()
        written = 0
        with open(path, "wb", buffering=0) as f:
            while written < size and time.perf_counter() - t < cap_s:
                written += f.write(buf)
            t_w = time.perf_counter()
            os.fsync(f.fileno())
        t_end = time.perf_counter()
        sink.row(
            step="write_buffered",
            path=str(path),
            bytes=written,
            seconds=t_w - t,
            gbps=written / (t_w - t) / 1e9,
            note=f"fs {fstype}; before fsync",
        )
        sink.row(
            step="write_incl_fsync",
            path=str(path),
            bytes=written,
            seconds=t_end - t,
            gbps=written / (t_end - t) / 1e9,
            note=f"fs {fstype}",
        )

        def read_all(step, flags=0, advise=False, note=""):
            fd = os.open(path, os.O_RDONLY | flags)
            try:
                if advise:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                mm = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs
                got, t = 0, time.perf_counter()
                while got < written and time.perf_counter() - t < cap_s:
                    k = os.readv(fd, [mm])
                    if k <= 0:
                        break
                    got += k
                dt = time.perf_counter() - t
                mm.close()
            finally:
                os.close(fd)
            sink.row(step=step, path=str(path), bytes=got, seconds=dt, gbps=got / dt / 1e9, note=note)
            return got / dt / 1e9

        res = {"cached": read_all("read_after_write", note="page cache probably holds the file")}
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        res["fadvise"] = read_all(
            "read_after_fadvise_dontneed",
            advise=True,
            note="posix_fadvise DONTNEED first; the host under the VM may still cache",
        )
        try:
            res["direct"] = read_all("read_o_direct", flags=os.O_DIRECT, note="O_DIRECT, 16 MiB reads")
        except OSError as e:
            sink.row(step="read_o_direct", path=str(path), note=f"failed: {e}")
        log(
            "(d) disk GB/s: write %.2f (incl fsync), " % (written / (t_end - t) / 1e9)
            + ", ".join(f"{k} {v:.2f}" for k, v in res.items())
        )
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/offload")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes and sizes (a logic check, CPU or GPU)")
    ap.add_argument("--budget", type=float, default=330.0, help="seconds; later configurations are skipped past it")
    ap.add_argument("--parts", default="abcd", help="which parts to run: a copies, b weights, c kv, d disk")
    ap.add_argument("--kv-cap-gib", type=float, default=8.0, help="pinned host memory for part (c)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(args.budget)
    meta_start(out, args)
    log(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, device "
        f"{torch.cuda.get_device_name(0) if CUDA else 'cpu'}"
    )
    if args.smoke:
        s = Shape(hidden=256, heads=4, kv_heads=2, head_dim=64, inter=512, layers=4, vocab=1000)
        sizes = [4 * KiB * 4**i for i in range(5)]
        decode_cfgs, prefill_cfgs = [(1, 64), (8, 64), (4, 128)], [64, 256]
        kv_cfgs, disk_size, kv_cap = [(1, 128), (4, 256)], 64 * MiB, int(args.kv_cap_gib * MiB)
    else:
        s = Shape()
        sizes = [4 * KiB * 4**i for i in range(10)]  # 4 KiB .. 1 GiB
        decode_cfgs = [(B, 512) for B in (1, 8, 32, 64, 128, 256, 512, 1024)] + [(64, 2048), (256, 2048)]
        prefill_cfgs = [512, 2048, 8192]
        kv_cfgs = [(B, C) for C in (1024, 4096) for B in (1, 8, 32, 64)]
        disk_size, kv_cap = 4 * GiB, int(args.kv_cap_gib * GiB)
    META["shape"] = asdict(s)
    META["layer_bytes"] = s.layer_elems * 2
    try:
        setup_attention()
    except Exception as e:  # noqa: BLE001
        error("attention setup", e)
    st: dict = {}
    summary: dict = {}
    if "a" in args.parts:
        try:
            summary["copy"] = part_copy(out, sizes, clock)
        except Exception as e:  # noqa: BLE001
            error("a", e)
        write_meta(out)
    if "b" in args.parts or "c" in args.parts:
        try:
            summary["weights"] = part_weights(
                out, s, decode_cfgs if "b" in args.parts else [], prefill_cfgs if "b" in args.parts else [], clock, st
            )
        except Exception as e:  # noqa: BLE001
            error("b", e)
        write_meta(out)
    if "c" in args.parts and "resident" in st:
        try:
            summary["kv"] = part_kv(out, s, kv_cfgs, kv_cap, clock, st)
        except Exception as e:  # noqa: BLE001
            error("c", e)
        write_meta(out)
    st.clear()
    _free_host()
    if "d" in args.parts and clock.left() > 25:
        try:
            part_disk(out, disk_size, clock)
        except Exception as e:  # noqa: BLE001
            error("d", e)
        write_meta(out)
    if "a" in args.parts and clock.left() > 15:
        try:
            part_copy_graph(out, sizes, clock)
        except Exception as e:  # noqa: BLE001
            error("a graph", e)
    write_meta(out)

    # the short table the reply carries
    print("\n==== summary ====")
    c = summary.get("copy", {})
    big = sizes[-1]
    for d in ("h2d", "d2h"):
        print(
            f"{d} {big / MiB:.0f} MiB batch: pinned {c.get((d, True, big), float('nan')):.2f} GB/s, "
            f"pageable {c.get((d, False, big), float('nan')):.2f} GB/s"
        )
    for k in ("h2d_alone", "d2h_alone", "pair_total"):
        print(f"duplex {k}: {c.get(('duplex', k), float('nan')):.2f} GB/s")
    w = summary.get("weights")
    if w:
        print(
            f"weights copy alone {w['copy_alone'] * 1e3:.1f} ms (end {w.get('copy_alone_end', float('nan')) * 1e3:.1f})"
        )
        print("phase   T     B    C     kind  resident_ms serial_ms prefetch_ms compute_ms  copy_ms pf/max pf/sum")
        for ph, T, B, C, r, cp in w["rows"]:
            for suf in ("", "_graph"):
                if "resident" + suf not in r:
                    continue
                pf, co = r.get("stream_prefetch" + suf, float("nan")), r.get("compute_alone" + suf, float("nan"))
                print(
                    f"{ph:7s} {T:5d} {B:4d} {C:5d} {suf[1:] or 'eager':5s} {r['resident' + suf] * 1e3:11.2f} "
                    f"{r.get('stream_serial' + suf, float('nan')) * 1e3:9.2f} {pf * 1e3:11.2f} {co * 1e3:10.2f} "
                    f"{cp * 1e3:8.1f} {pf / max(cp, co):6.3f} {pf / (cp + co):6.3f}"
                )
    print("kv  B     C     kind  resident_ms serial_ms prefetch_ms compute_ms  copy_ms pf/max pf/sum")
    for B, C, r, cp in summary.get("kv", []):
        for suf in ("", "_graph"):
            if "resident" + suf not in r:
                continue
            pf, co = r.get("stream_prefetch" + suf, float("nan")), r.get("compute_alone" + suf, float("nan"))
            print(
                f"kv {B:3d} {C:5d} {suf[1:] or 'eager':5s} {r['resident' + suf] * 1e3:11.2f} "
                f"{r.get('stream_serial' + suf, float('nan')) * 1e3:9.2f} {pf * 1e3:11.2f} {co * 1e3:10.2f} "
                f"{cp * 1e3:8.2f} {pf / max(cp, co):6.3f} {pf / (cp + co):6.3f}"
            )
    print(f"errors: {len(META['errors'])}; total {time.perf_counter() - T0:.1f} s")


if __name__ == "__main__":
    main()

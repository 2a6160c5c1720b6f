"""`servesim validate`: time real forward passes and compare them with predictions.

Measurement (needs a GPU) writes one row per batch: its shape and the measured seconds
(median of CUDA-graph replays). Comparison (no GPU needed) adds the predictions of the
profiled and the roofline models and the absolute percentage errors.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from servesim.models import ModelSpec
from servesim.perf import Batch, PerfModel

ENGINE_OPS = {"cpu_overhead", "sampler"}  # engine work outside the model's forward pass
GIB = 2**30
KV_SHARE = 0.8  # of the memory free once the weights are loaded: the rest is left for activations and graphs


GRIDS = ("standard", "long")
# prompts past the profile's main attention grid (16k): one chunk of 16k-128k tokens, or a chunk after a long context
LONG_GRID = [("prefill", L, C, 0, 0) for L, C in ((16384, 0), (32768, 0), (65536, 0), (131072, 0), (32768, 32768),
                                                  (16384, 65536))]  # fmt: skip
LONG_REPEATS = 3  # a 128k-token forward pass takes seconds; three replays keep the grid near two minutes


def validation_grid(spec: ModelSpec, kv_limit_bytes: float = float("inf"), kv_dtype: str = "bf16",
                    grid: str = "standard") -> list[tuple[str, int, int, int, int]]:  # fmt: skip
    """(kind, chunk, chunk_ctx, decodes, decode_ctx): pure prefill, pure decode, mixed (`grid` "standard"), or
    long prompts ("long"); batches whose KV cache exceeds `kv_limit_bytes` are left out (see `skipped`)."""
    return [b for b in _full_grid(grid) if kv_bytes(spec, b, kv_dtype) <= kv_limit_bytes]


def _full_grid(grid: str = "standard") -> list[tuple[str, int, int, int, int]]:
    if grid == "long":
        return list(LONG_GRID)
    grid = [("prefill", L, 0, 0, 0) for L in (64, 128, 256, 512, 1024, 2048, 4096, 8192)]
    grid += [("prefill", L, C, 0, 0) for L in (512, 2048) for C in (2048, 8192, 16384)]
    grid += [("decode", 0, 0, B, C) for B in (1, 8, 32, 64, 128, 256) for C in (512, 2048, 8192)]
    grid += [("decode", 0, 0, B, C) for B in (1, 2, 4) for C in (16384, 32768)]  # a few long sequences
    grid += [("mixed", L, C, B, 2048) for L in (256, 1024, 2048) for C in (0, 2048) for B in (16, 64)]
    grid += [("mixed", L, 0, B, Cd) for L in (256, 2048) for B in (16, 64) for Cd in (512, 1024, 4096)]
    return grid


def kv_bytes(spec: ModelSpec, batch: tuple, kv_dtype: str = "bf16") -> float:
    """KV-cache bytes one validation batch holds: the chunk's context and every decode's."""
    _, L, C, B, Cd = batch
    return spec.kv_bytes_per_token(kv_dtype) * ((L + C if L else 0) + B * (Cd + 1))


def skipped(spec: ModelSpec, kv_limit_bytes: float, kv_dtype: str = "bf16", grid: str = "standard") -> list[str]:
    """One note per batch left out of the grid for lack of memory."""
    notes = []
    for batch in _full_grid(grid):
        need = kv_bytes(spec, batch, kv_dtype)
        if need > kv_limit_bytes:
            kind, L, C, B, Cd = batch
            notes.append(f"skipped {kind} chunk {L}:{C} decodes {B}x{Cd}: its KV cache needs {need / GIB:.1f} GiB, "
                         f"{kv_limit_bytes / GIB:.1f} GiB available")  # fmt: skip
    return notes


class MeasurementStopped(Exception):
    """The GPU ran out of memory; `rows` holds what was measured before, `message` says where and why."""

    def __init__(self, message: str, rows: list[dict]):
        super().__init__(message)
        self.rows = rows


def is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def batch_of(chunk: int, chunk_ctx: int, decodes: int, decode_ctx: int) -> Batch:
    b = Batch()
    if chunk:
        b = b + Batch.prefill(chunk, chunk_ctx)
    if decodes:
        b = b + Batch.decode(decodes, decode_ctx)
    return b


def forward_seconds(perf: PerfModel, batch: Batch) -> float:
    """Predicted time of the model's forward pass alone (no scheduler or sampler)."""
    return sum(op.seconds for op in perf.breakdown(batch) if op.name not in ENGINE_OPS)


def measure(spec: ModelSpec, gpu: str, repeats: int = 10, log=print, dtype: str = "bf16",
            kv_dtype: str = "bf16", grid: str = "standard", keep: Path | None = None) -> pd.DataFrame:  # fmt: skip
    """Run the validation grid on the GPU; one row per batch with the measured seconds, each also written to
    `keep` as it is measured (a run cut short keeps what it finished)."""
    from servesim.errors import ServesimError

    try:
        import torch
    except ImportError:
        raise ServesimError("servesim validate needs PyTorch and a CUDA GPU (or --measured FILE)") from None
    if not torch.cuda.is_available():
        raise ServesimError("servesim validate needs a CUDA GPU (or --measured FILE)")

    from servesim.profiler import kernels
    from servesim.profiler.decoder import Decoder
    from servesim.profiler.timing import capture, check_this_gpu, replay_seconds

    check_this_gpu(gpu)
    kernels.probe("cuda")
    if spec.is_moe:
        log(f"MoE probe: {kernels.probe_moe('cuda')}")
    if spec.is_mla:
        from servesim.profiler import mla_decode

        log(f"MLA decode kernel: {mla_decode.tune('cuda')}")
    rows: list[dict] = []
    try:
        dec = Decoder(spec, dtype=dtype, kv_dtype=kv_dtype)
    except Exception as e:
        if not is_oom(e):
            raise
        free, need = torch.cuda.mem_get_info()[0], spec.weight_bytes(dtype)
        raise MeasurementStopped(f"out of GPU memory loading {spec.name}'s weights ({need / GIB:.1f} GiB; "
                                 f"{free / GIB:.1f} GiB free)", rows) from None  # fmt: skip
    limit = KV_SHARE * torch.cuda.mem_get_info()[0]  # the grid fits what this GPU has free, not a constant
    for note in skipped(spec, limit, kv_dtype, grid):
        log(note)
    if grid == "long":
        repeats = min(repeats, LONG_REPEATS)
    for batch in validation_grid(spec, limit, kv_dtype, grid):
        kind, L, C, B, Cd = batch
        try:
            inp = dec.inputs(L, C, B, Cd)
            for _ in range(2):
                dec.forward(inp)
            graph = capture(lambda inp=inp: dec.forward(inp))
            seconds = replay_seconds(graph, repeats)
        except Exception as e:
            if not is_oom(e):
                raise
            inp = graph = None
            torch.cuda.empty_cache()
            free, need = torch.cuda.mem_get_info()[0], kv_bytes(spec, batch, kv_dtype)
            raise MeasurementStopped(f"out of GPU memory at the {kind} batch chunk {L}:{C} decodes {B}x{Cd} (its KV "
                                     f"cache needs {need / GIB:.1f} GiB; {free / GIB:.1f} GiB free)",
                                     rows) from None  # fmt: skip
        rows.append(dict(model=spec.name, gpu=gpu, dtype=dtype, kv_dtype=kv_dtype, kind=kind, chunk=L, chunk_ctx=C,
                         decodes=B, decode_ctx=Cd, measured_s=seconds))  # fmt: skip
        if keep is not None:
            save(pd.DataFrame(rows), keep)
        log(f"{time.strftime('%H:%M:%S')} {kind:8s} chunk {L}:{C} decodes {B}x{Cd}: {seconds * 1e3:.3f} ms")
        del graph, inp
        torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def measure_tp(spec: ModelSpec, gpu: str, tp: int, out: Path, repeats: int = 10) -> None:
    """The validation grid on `tp` GPUs of this machine, the model split as vLLM's tensor parallelism
    splits it (`Decoder(tp=...)`, NCCL all-reduces inside the CUDA graph); rank 0 writes `out`."""
    import torch.multiprocessing as mp

    from servesim.profiler.timing import check_this_gpu

    check_this_gpu(gpu)
    mp.spawn(_tp_worker, args=(tp, spec.name, gpu, str(out), repeats), nprocs=tp)


def _tp_worker(rank: int, tp: int, model: str, gpu: str, out: str, repeats: int) -> None:
    import os

    import torch
    import torch.distributed as dist

    from servesim.models import get_model
    from servesim.profiler import kernels
    from servesim.profiler.decoder import Decoder
    from servesim.profiler.timing import capture, replay_seconds

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=tp)
    kernels.probe("cuda")
    spec = get_model(model)
    dec = Decoder(spec, tp=tp)
    limit = torch.tensor([KV_SHARE * torch.cuda.mem_get_info()[0] * tp], device="cuda", dtype=torch.float64)
    dist.all_reduce(limit, op=dist.ReduceOp.MIN)  # every rank runs the same grid (the KV cache is split tp ways)
    rows = []
    for kind, L, C, B, Cd in validation_grid(spec, float(limit.item())):
        inp = dec.inputs(L, C, B, Cd)
        for _ in range(2):
            dec.forward(inp)
        dist.barrier()
        graph = capture(lambda inp=inp: dec.forward(inp))
        dist.barrier()
        seconds = replay_seconds(graph, repeats)
        rows.append(dict(model=spec.name, gpu=gpu, dtype="bf16", kv_dtype="bf16", tp=tp, kind=kind, chunk=L,
                         chunk_ctx=C, decodes=B, decode_ctx=Cd, measured_s=seconds))  # fmt: skip
        if rank == 0:
            print(f"{time.strftime('%H:%M:%S')} tp{tp} {kind:8s} chunk {L}:{C} decodes {B}x{Cd}: "
                  f"{seconds * 1e3:.3f} ms", flush=True)  # fmt: skip
        del graph, inp
        torch.cuda.empty_cache()
    if rank == 0:
        save(pd.DataFrame(rows), Path(out))
    dist.barrier()
    dist.destroy_process_group()


def compare(measured: pd.DataFrame, models: dict[str, PerfModel]) -> pd.DataFrame:
    """Add `<name>_s` predictions and `<name>_ape` errors (percent) for each performance model."""
    df = measured.copy()
    for name, perf in models.items():
        pred = [forward_seconds(perf, batch_of(r.chunk, r.chunk_ctx, r.decodes, r.decode_ctx))
                for r in df.itertuples()]  # fmt: skip
        df[f"{name}_s"] = pred
        df[f"{name}_ape"] = 100 * np.abs(df[f"{name}_s"] - df.measured_s) / df.measured_s
    return df


def error_stats(df: pd.DataFrame, name: str) -> dict:
    e = df[f"{name}_ape"]
    return {"median_ape": float(e.median()), "p90_ape": float(np.percentile(e, 90)), "max_ape": float(e.max()),
            "points": int(len(e))}  # fmt: skip


def save(df: pd.DataFrame, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    return out


def validate_model(model: str, gpu: str, out: Path | None, measured: Path | None, measure_only: bool,
                   profile_dir: Path | None, log=print, dtype: str = "bf16",
                   kv_dtype: str = "auto", tp: int = 1,
                   grid: str = "standard") -> tuple[pd.DataFrame, str]:  # fmt: skip
    """`servesim validate`: measure on this GPU, or on `tp` of them (or read `measured`), then compare with
    both predictors.

    A measurement file says which weight and KV-cache dtypes (bf16 where it says nothing) and which tensor
    parallel size (1 where it says nothing) it ran."""
    from servesim.errors import ServesimError
    from servesim.files import read_text
    from servesim.hardware import get_gpu
    from servesim.kv_geometry import kv_dtype as resolved_kv_dtype
    from servesim.models import get_model

    spec, g = get_model(model), get_gpu(gpu)
    kv_dtype = resolved_kv_dtype(dtype, kv_dtype)  # auto as vLLM reads it
    g.peak_flops(dtype)  # a GPU without fp8 tensor cores refuses fp8 here
    if spec.is_mla and kv_dtype != "bf16" and measured is None:
        raise ServesimError(f"validation runs MLA ({spec.name}) over a bf16 latent cache only; pass "
                            "--kv-cache-dtype bf16")
    if grid not in GRIDS:
        raise ServesimError(f"unknown --grid {grid}; choose one of {', '.join(GRIDS)}")
    if grid != "standard" and (tp > 1 or measured is not None):
        raise ServesimError("--grid long measures on one GPU; drop --tp (a --measured file holds its own grid)")
    suffix = "" if (dtype, kv_dtype) == ("bf16", "bf16") else f"_{dtype}_kv{kv_dtype}"
    suffix += "_long" if grid == "long" else ""
    layout = f"tp{tp}_" if tp > 1 else ""
    default_out = Path(f"validation_{layout}{g.name}_{spec.name}{suffix}.csv")
    if out is None and measured is None and default_out.exists():  # a measurement is never written over
        raise ServesimError(f"{default_out} exists (an earlier measurement); pass --out to write elsewhere, or move it")
    if measured is not None:
        read_text(measured, "measurement file")
        df = pd.read_csv(measured)
        missing = {"kind", "chunk", "chunk_ctx", "decodes", "decode_ctx", "measured_s"} - set(df.columns)
        if missing:
            raise ServesimError(f"measurement file {measured} lacks columns {', '.join(sorted(missing))}; pass a CSV "
                                "written by servesim validate --measure-only")  # fmt: skip
        for column, want in (("model", spec.name), ("gpu", g.name)):
            if column in df.columns and str(df[column].iloc[0]) != want:
                raise ServesimError(f"measurement file {measured} was measured with {column} {df[column].iloc[0]}, "
                                    f"not {want}; pass --{column} {df[column].iloc[0]}")  # fmt: skip
    elif tp > 1:
        measure_tp(spec, g.name, tp, out or default_out)
        df = pd.read_csv(out or default_out)
    else:
        try:
            df = measure(spec, g.name, log=log, dtype=dtype, kv_dtype=kv_dtype, grid=grid,
                         keep=out or (default_out if measure_only else None))  # fmt: skip
        except MeasurementStopped as stop:
            kept = ""
            if stop.rows:
                path = save(pd.DataFrame(stop.rows), out or default_out)
                kept = f"; the {len(stop.rows)} batches measured before it are in {path}"
            raise ServesimError(f"{stop}{kept}") from None
    if measure_only:
        save(df, out or default_out)
        return df, ""
    from servesim.layout import Layout
    from servesim.perf import RooflineModel
    from servesim.perf.profiled import ProfiledModel, load_profile_for

    prof = load_profile_for(g.name, profile_dir)
    if prof is None:
        raise ServesimError(f"no profile for {g.name}; pass --profile DIR")
    dt, kvd = (str(df[c].iloc[0]) if c in df.columns else "bf16" for c in ("dtype", "kv_dtype"))
    tp = int(df.tp.iloc[0]) if "tp" in df.columns else 1
    layout = Layout(tp)
    layout.check(spec)
    df = compare(df, {"profiled": ProfiledModel(spec, g, prof, layout, dtype=dt, kv_dtype=kvd),
                      "roofline": RooflineModel(spec, g, layout, dtype=dt, kv_dtype=kvd)})  # fmt: skip
    if out:
        save(df, out)
    label = "" if (dt, kvd) == ("bf16", "bf16") else f" ({dt} weights, {kvd} KV cache)"
    where = f"{tp} x {g.name} (TP{tp})" if tp > 1 else g.name
    return df, f"{spec.name} on {where}{label}: measured vs predicted forward time"

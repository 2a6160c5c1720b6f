"""CPU inference priced by the roofline with CPU parameters.

A CPU (catalog `kind = "cpu"`) runs the same operator structure as a GPU; only the
achievable fractions of its peaks and its fixed costs differ. They are fitted to a profile
that `servesim profile --device cpu` wrote (`profiles/cpu/<device>/`, kept apart from GPU
profiles, whose loader reads other tables), or taken from DEFAULT_CPU_PARAMS, which are this
project's CI machine's fit rounded (the one CPU measured so far).

What the fit takes from which table, at one thread count:
- kernel_overhead_s: median seconds of an eager op on tiny tensors;
- gemm_efficiency, gemm_half_rows, mem_efficiency: the grid point whose roofline best matches
  the measured GEMMs (mean relative error). mem_efficiency comes from the GEMMs, not from the
  streaming table: bf16 GEMVs (decode's weight reads) run at about half of what a plain copy
  reaches here (16-21 against 37-39 GB/s on 2 threads), and so does SDPA decode over the KV cache,
  so the copy rate would price every memory-bound operator too fast;
- attn_efficiency: the one value that best matches the SDPA prefill and decode rows.
The streaming table stays as the measure of the DRAM itself (the catalog's mem_bw_gbs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from servesim.errors import ServesimError
from servesim.hardware import GPUSpec
from servesim.layout import Layout
from servesim.models import ModelSpec
from servesim.perf.profile_data import profile_dirs
from servesim.perf.roofline import RooflineModel, RooflineParams, dense_gemm

CPU_DIR = "cpu"  # profiles/cpu/<device>/
COLUMNS = {
    "gemm.csv": ["threads", "m", "n", "k", "seconds"],
    "membw.csv": ["threads", "op", "gbs"],
    "attention.csv": ["threads", "kind", "batch", "q_len", "ctx", "hq", "hkv", "d", "seconds"],
    "overhead.csv": ["threads", "op", "seconds"],
}

# No profile: this project's CI CPU (epyc-zen4-2vcpu, 2 Zen 4 cores, torch 2.13 + oneDNN) as fitted
# from profiles/cpu/epyc-zen4-2vcpu at 2 threads (0.96, 18.4, 0.12, 0.54, 1.26 us), rounded. The one CPU
# measured so far: a many-core socket's fractions may differ (its bandwidth shared by more cores).
# Engine costs (cpu_overhead_s, cpu_per_seq_s) keep the roofline's: nothing here measures an engine's
# scheduler on a CPU.
DEFAULT_CPU_PARAMS = RooflineParams(gemm_efficiency=0.95, gemm_half_rows=18.0, attn_efficiency=0.12,
                                    mem_efficiency=0.55, kernel_overhead_s=1.3e-6)  # fmt: skip


@dataclass(frozen=True, eq=False)
class CPUProfile:
    """A CPU profile's folder, meta.json and tables (pandas frames)."""

    path: Path
    meta: dict
    tables: dict

    @property
    def threads(self) -> list[int]:
        return sorted(int(t) for t in self.tables["gemm.csv"].threads.unique())


def find_cpu_profile(device: str) -> Path | None:
    """The folder of `device`'s CPU profile ($SERVESIM_PROFILE_DIR first, then the shipped ones), or None."""
    for d in profile_dirs():
        if (d / CPU_DIR / device / "meta.json").is_file():
            return d / CPU_DIR / device
    return None


def load_cpu_profile(path: str | Path) -> CPUProfile:
    """Read and check a folder written by `servesim profile --device cpu`; any fault is one clear error."""
    return _load(Path(path).resolve())


@cache
def _load(p: Path) -> CPUProfile:
    fix = "re-run servesim profile --device cpu -o DIR"
    try:
        meta = json.loads((p / "meta.json").read_text())
    except FileNotFoundError:
        raise ServesimError(f"CPU profile {p}: meta.json missing; {fix}") from None
    except (OSError, ValueError) as e:
        raise ServesimError(f"CPU profile {p}: meta.json unreadable ({e}); {fix}") from None
    if meta.get("kind") != "cpu":
        raise ServesimError(f"profile {p} is not a CPU profile (a GPU's?); pass a folder written by {fix[7:]}")
    tables = {}
    for name, cols in COLUMNS.items():
        try:
            df = pd.read_csv(p / name)
        except (OSError, ValueError) as e:
            raise ServesimError(f"CPU profile {p}: {name} unreadable ({type(e).__name__}); {fix}") from None
        missing = set(cols) - set(df.columns)
        if missing or df.empty:
            what = f"lacks columns {', '.join(sorted(missing))}" if missing else "has no rows"
            raise ServesimError(f"CPU profile {p}: {name} {what}; {fix}")
        tables[name] = df
    return CPUProfile(p, meta, tables)


def _at(df: pd.DataFrame, threads: int) -> pd.DataFrame:
    return df[df.threads == threads]


def _scaled(gpu: GPUSpec, threads: int, cores: int) -> float:
    """Peak FLOP/s of `threads` of the device's `cores` (the catalog peak is every core's)."""
    return gpu.peak_flops("bf16") * min(threads, cores) / cores


def fit_cpu_params(profile: CPUProfile, gpu: GPUSpec, threads: int | None = None) -> RooflineParams:
    """RooflineParams for `gpu` fitted to `profile` at `threads` (default: the most it measured)."""
    threads = threads or max(profile.threads)
    if threads not in profile.threads:
        raise ServesimError(f"CPU profile {profile.path} has no measurement at {threads} threads (it has "
                            f"{', '.join(map(str, profile.threads))}); pass one of those")  # fmt: skip
    cores = int(profile.meta.get("cores", threads))
    return _fit(profile, gpu.bf16_tflops, gpu.mem_bw_gbs, threads, cores)


@cache
def _fit(profile: CPUProfile, tflops: float, bw_gbs: float, threads: int, cores: int) -> RooflineParams:
    t = profile.tables
    peak, bw = tflops * 1e12 * min(threads, cores) / cores, bw_gbs * 1e9
    overhead = float(_at(t["overhead.csv"], threads).seconds.median())
    g = _at(t["gemm.csv"], threads)
    M, N, K, secs = (g[c].to_numpy(float)[:, None, None, None] for c in ("m", "n", "k", "seconds"))
    effs, halves, mems = np.linspace(0.3, 1.0, 36), np.geomspace(1, 512, 46), np.linspace(0.1, 1.0, 46)
    pred = gemm_roofline(M, N, K, peak, bw, effs[None, :, None, None], halves[None, None, :, None],
                         mems[None, None, None, :], overhead)  # fmt: skip
    err = np.mean(np.abs(pred - secs) / secs, axis=0)
    i, j, k = np.unravel_index(int(np.argmin(err)), err.shape)
    mem_eff = float(mems[k])
    attn_eff = _fit_attention(_at(t["attention.csv"], threads), peak, bw * mem_eff, overhead)
    return RooflineParams(gemm_efficiency=float(effs[i]), gemm_half_rows=float(halves[j]),
                          attn_efficiency=attn_eff, mem_efficiency=mem_eff, kernel_overhead_s=overhead)  # fmt: skip


def stream_efficiency(profile: CPUProfile, gpu: GPUSpec, threads: int) -> float:
    """Median streaming bandwidth (read, copy, triad) at `threads` over the catalog's mem_bw_gbs: what plain
    copies reach, against which the fitted mem_efficiency (what GEMVs reach) is compared."""
    return float(_at(profile.tables["membw.csv"], threads).gbs.median() / gpu.mem_bw_gbs)


def gemm_roofline(m, n, k, peak: float, bw: float, eff, half, mem_eff: float, overhead: float):
    """RooflineModel._gemm's seconds of bf16 [m x k] @ [k x n] (bw: the catalog bandwidth, bytes/s)."""
    return dense_gemm(m, n, k, peak, bw * mem_eff, eff, half, 2, 2)[0] + overhead


def _fit_attention(a: pd.DataFrame, peak: float, bw: float, overhead: float) -> float:
    """The attention efficiency whose roofline (RooflineModel's prefill and decode terms) best matches `a`."""
    if a.empty:
        return DEFAULT_CPU_PARAMS.attn_efficiency
    hq, hkv, d, q, c, b = (a[x].to_numpy(float) for x in ("hq", "hkv", "d", "q_len", "ctx", "batch"))
    pre = (a.kind == "prefill").to_numpy()
    pairs = np.where(pre, q * c + q * (q + 1) / 2, b * c)  # a decode: one query over each request's context
    flops = 4.0 * hq * d * pairs
    kv = 2.0 * hkv * d * 2  # K and V, bf16, per cached token
    nbytes = np.where(pre, (c + q) * kv + q * 2 * hq * d * 2, b * c * kv + b * 2 * hq * d * 2)
    effs = np.linspace(0.02, 1.0, 99)
    pred = np.maximum(flops[:, None] / (peak * effs[None, :]), (nbytes / bw)[:, None]) + overhead
    secs = a.seconds.to_numpy(float)[:, None]
    return float(effs[int(np.argmin(np.mean(np.abs(pred - secs) / secs, axis=0)))])


class CPUModel(RooflineModel):
    """The roofline with CPU parameters; `source` says where they came from (for `describe`)."""

    def __init__(self, model: ModelSpec, gpu: GPUSpec, layout: Layout | None = None, dtype: str = "bf16",
                 kv_dtype: str | None = None, params: RooflineParams | None = None, source: str = "",
                 **options):  # fmt: skip
        super().__init__(model, gpu, layout, dtype, kv_dtype, params or DEFAULT_CPU_PARAMS, **options)
        self.source = source or f"roofline with default CPU parameters ({gpu.name} has no CPU profile)"


def cpu_perf_model(model: ModelSpec, gpu: GPUSpec, layout: Layout | None = None, dtype: str = "bf16",
                   kv_dtype: str | None = None, kind: str = "auto", profile_dir: str | Path | None = None,
                   threads: int | None = None, **options) -> CPUModel:  # fmt: skip
    """A CPU's model: `auto` fits its profile where one is found (or given), else DEFAULT_CPU_PARAMS; `profiled`
    requires a profile; `roofline` takes the defaults. `threads` < the profile's cores prices that many cores."""
    if kind not in ("auto", "profiled", "roofline"):
        raise ServesimError(f"perf model '{kind}' is unknown; use auto, profiled or roofline")
    path = None if kind == "roofline" else (Path(profile_dir) if profile_dir else find_cpu_profile(gpu.name))
    if path is None:
        if kind == "profiled":
            raise ServesimError(f"no CPU profile for {gpu.name}; measure one with servesim profile --device cpu -o "
                                "DIR and pass --profile DIR, or use --perf-model roofline")  # fmt: skip
        return CPUModel(model, gpu, layout, dtype, kv_dtype, **options)
    prof = load_cpu_profile(path)
    n = threads or max(prof.threads)
    params = fit_cpu_params(prof, gpu, n)
    cores = int(prof.meta.get("cores", n))
    if n < cores:  # fewer threads than the machine's cores: their share of its peak
        gpu = gpu.model_copy(update={"bf16_tflops": _scaled(gpu, n, cores) / 1e12})
    src = (f"roofline with CPU parameters fitted to the {prof.meta.get('device', gpu.name)} profile "
           f"({prof.meta.get('cpu', '?')}, {n} thread{'s' * (n > 1)}, {prof.meta.get('date', '?')})")  # fmt: skip
    return CPUModel(model, gpu, layout, dtype, kv_dtype, params, source=src, **options)


def describe_params(p: RooflineParams) -> str:
    """One line of the fitted figures, for the docs and logs."""
    return (f"gemm_efficiency {p.gemm_efficiency:.3f}, gemm_half_rows {p.gemm_half_rows:.1f}, attn_efficiency "
            f"{p.attn_efficiency:.2f}, mem_efficiency {p.mem_efficiency:.2f}, kernel_overhead "
            f"{p.kernel_overhead_s * 1e6:.2f} us")  # fmt: skip


__all__ = ["CPUModel", "CPUProfile", "DEFAULT_CPU_PARAMS", "cpu_perf_model", "find_cpu_profile", "fit_cpu_params",
           "load_cpu_profile"]

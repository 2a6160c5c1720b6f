"""Profiled performance model: measured kernel times where the profile has them.

GEMMs of a profiled (N, K) shape, attention of a profiled head layout, and elementwise
kernels come from the profile's tables; anything else falls back to the roofline with
efficiencies fitted to the profile's GEMM measurements, so every model and shape gets a
prediction. The operator structure is the roofline's: only the prices differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from functools import cache
from pathlib import Path

import numpy as np

from servesim.errors import ServesimError
from servesim.hardware import GPUSpec
from servesim.layout import Layout
from servesim.models import ModelSpec
from servesim.perf.batch import Batch
from servesim.perf.profile_data import Profile, find_profile, load_profile, profiled_gpus
from servesim.perf.roofline import RooflineModel, RooflineParams

FIT_FILE = "roofline_fit.json"  # the fit, stored beside the tables it came from (a search of ~0.2 s)


def fitted_params(profile: Profile, gpu: GPUSpec) -> RooflineParams:
    """Roofline efficiencies that best match the profile's GEMMs (median relative error).

    The fit is kept in the profile folder, keyed by a digest of the tables and the GPU's
    peaks, and recomputed whenever they differ."""
    peak, bw = gpu.peak_flops("bf16"), gpu.mem_bw_gbs * 1e9
    key = {"tables": profile.digest, "peak_flops": peak, "mem_bw": bw}
    path = profile.path / FIT_FILE
    try:
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return RooflineParams(**stored["params"])
    except (OSError, ValueError, TypeError, KeyError):
        pass
    params = _fit(profile, peak, bw)
    with contextlib.suppress(OSError):  # a read-only install: fit again next time
        path.write_text(json.dumps({"key": key, "params": dataclasses.asdict(params)}, indent=2) + "\n")
    return params


@cache
def _fit(profile: Profile, peak: float, bw: float) -> RooflineParams:
    g = profile.raw["gemm.csv"]
    M, N, K, t = (g[c] for c in ("m", "n", "k", "seconds"))
    flops, nbytes = 2 * M * N * K, (M * K + K * N + M * N) * 2
    kos = np.array([1e-6, 2e-6, 3e-6, 4e-6, 6e-6])
    best = (np.inf, None)
    for eff in np.linspace(0.55, 0.95, 9):
        for half in (4, 8, 16, 32, 64, 128, 256):
            compute = flops / (peak * eff * M / (M + half))
            for mem in np.linspace(0.6, 0.95, 8):
                base = np.maximum(compute, nbytes / (bw * mem))
                # every kernel overhead at once: one column each
                errs = np.median(np.abs(base[:, None] + kos - t[:, None]) / t[:, None], axis=0)
                i = int(np.argmin(errs))  # the first of equals, as a scan in order would keep
                if errs[i] < best[0]:
                    best = (float(errs[i]), (eff, half, mem, float(kos[i])))
    eff, half, mem, ko = best[1]
    pre = profile.raw["attention_prefill.csv"]
    big = pre.select(pre.q_len >= 2048)
    pairs = big.q_len * big.ctx + big.q_len * (big.q_len + 1) / 2
    attn_eff = float(np.median(4 * big.hq * big.d * pairs / big.seconds / peak)) if big.rows else 0.45
    return RooflineParams(gemm_efficiency=float(eff), gemm_half_rows=float(half), mem_efficiency=float(mem),
                          kernel_overhead_s=ko, attn_efficiency=attn_eff)  # fmt: skip


class ProfiledModel(RooflineModel):
    """Iteration time from a measured profile of `gpu`."""

    def __init__(self, model: ModelSpec, gpu: GPUSpec, profile: Profile, layout: Layout | None = None,
                 dtype: str = "bf16", kv_dtype: str | None = None, params: RooflineParams | None = None,
                 **options):  # fmt: skip
        super().__init__(model, gpu, layout, dtype, kv_dtype, params or fitted_params(profile, gpu), **options)
        self.profile = profile
        self.outside: list[str] = []  # what it prices past its measurements, for the run's notes (once each)
        # the attention grids' key: query heads, KV heads and head size; for MLA its heads and widths (MLA_KEY)
        self.heads = (self.hq, self.hkv, model.head_dim)
        if model.is_mla:
            self.heads = (self.hq, model.kv_lora_rank, model.qk_rope_dim, model.qk_nope_dim, model.v_head_dim)
        acts = dtype in ("bf16", "fp8")  # the profile's kernels run bf16 activations (fp16: the fitted roofline)
        self.fp8_gemm = dtype == "fp8"
        kv_fp8 = self.kvb == 1
        self.kv_suffix = "_fp8" if kv_fp8 else ""
        has_fp8_kv = bool(profile.decode_fp8) and "write_kv_fp8" in profile.elementwise
        attn = acts and (has_fp8_kv if kv_fp8 else self.kvb == 2)
        self.gemms = acts
        if model.is_mla:  # measured over a bf16 latent cache (an fp8 one: the fitted roofline)
            attn = acts and self.kvb == 2
            decode, prefill = profile.mla_decode, profile.mla_prefill
        else:
            decode, prefill = (profile.decode_fp8 if kv_fp8 else profile.decode), profile.prefill
        self.decode_grid = decode.get(self.heads) if attn else None
        self.prefill_grid = prefill.get(self.heads) if attn else None
        if model.is_mla and self.decode_grid is not None and self.hq > 16:  # where decode turns compute-bound
            self._note(f"MLA decode of {self.hq} heads priced at servesim's own Triton kernel as measured (about 170 "
                       "TFLOPS at 128 heads on the H100); FlashMLA reports up to 660 TFLOPS on H800s, so engines "
                       "running it decode faster than priced here")  # fmt: skip
        if model.is_mla and acts and self.decode_grid is None:
            self._note(f"MLA attention priced by the roofline fitted to the {gpu.name} profile: it has no "
                       f"measurement of {self.hq} heads over a {'fp8' if kv_fp8 else 'bf16'} latent cache")  # fmt: skip
        self.fitted = [what for what, missing in (
            ("fp16 kernels", dtype == "fp16"), ("fp8 GEMMs", self.fp8_gemm and not profile.gemm_fp8),
            ("fp8-KV attention", kv_fp8 and acts and not has_fp8_kv),
            (f"{self.quant.label if self.quant else ''} GEMMs", self.quant is not None)) if missing]  # fmt: skip
        self._decode_extra: dict[int, float] = {}
        self._by_tokens: dict[tuple[str, int], float] = {}  # elementwise kernels of mixed iterations, by token count
        # the MoE layers' grouped kernels and routing, where measured (fp8 experts: their own table)
        self.moe_tables = (profile.moe_fp8 if self.fp8_gemm else profile.moe) if acts and self.quant is None else {}

    def _note(self, text: str) -> None:
        if text not in self.outside:
            self.outside.append(text)

    def _gemm(self, rows, n: int, k: int, count=1.0, wide: bool = False):
        t, f, b = super()._gemm(rows, n, k, count, wide)
        if self.quant is not None and not wide:  # no quantised GEMM tables: the fitted roofline prices them
            return t, f, b
        measured = self.profile.gemm_time(rows, n, k, self.fp8_gemm and not wide) if self.gemms else None
        return (t if measured is None else measured * count), f, b

    def _allreduce(self, nbytes):
        return self._collective("all_reduce", self.tp, f"TP{self.tp} all-reduces", super()._allreduce, nbytes)

    def _alltoall(self, nbytes):
        return self._collective("all_to_all", self.ep, f"EP{self.ep} all-to-all dispatch and combine",
                                super()._alltoall, nbytes)  # fmt: skip

    def _collective(self, op: str, world: int, what: str, link_model, nbytes):
        """Measured (CUDA-graph timed) over `world` GPUs inside a node where the profile has it, extrapolated at the
        measured bandwidth past its largest size; the link model otherwise, noted."""
        curve = self.profile.collectives.get((op, world)) if self.link_bw == self.nvlink_bw else None
        if curve is None:
            self._note(f"{what} priced by the link model: the {self.gpu.name} profile has no measurement of them")
            return link_model(nbytes)
        return curve(nbytes)

    def _route(self, T):
        t, f, b = super()._route(T)
        curve = self.profile.moe.get(("route", 0, self.model.top_k, self.model.num_experts)) if self.gemms else None
        return (t if curve is None else curve(T)), f, b

    def _experts(self, copies, width: int, local: int):
        """Measured grouped kernels where the profile has this split of the layer; the fitted roofline otherwise."""
        t, f, b = super()._experts(copies, width, local)
        curve = self.moe_tables.get(("experts", self.model.hidden, width, local))
        if curve is None:
            kind = "fp8 " if self.fp8_gemm else ""
            self._note(f"{kind}MoE layers of {local} experts {width} wide (hidden {self.model.hidden}) priced by the "
                       f"roofline fitted to the {self.gpu.name} profile: not measured")  # fmt: skip
            return t, f, b
        return curve(np.maximum(copies, 1.0)), f, b

    def _embedding(self, T, nbytes):
        return self.profile.elementwise_time("embedding", T, self.model.hidden)

    def _elementwise(self, T):
        m, ew = self.model, self.profile.elementwise_time
        qk = self.rope_width
        per_layer = [("rms_norm", m.hidden, 2), ("add", m.hidden, 2), ("rope", qk, 1)]
        if m.qk_norm:  # per-head RMS norms of queries and keys, priced as one norm over their width
            per_layer.append(("rms_norm", qk, 1))
        if m.is_mla:  # the latent's norm, and the low-rank query's where it has one
            per_layer += [("rms_norm", m.kv_lora_rank, 1)] + [("rms_norm", m.q_lora_rank, 1)] * bool(m.q_lora_rank)
        seconds = sum(count * ew(op, T, width) for op, width, count in per_layer) * m.layers
        for layers, width in self.silu_widths:
            seconds = seconds + layers * ew("silu_mul", T, width)
        seconds = seconds + ew("rms_norm", T, m.hidden)  # final norm
        return seconds, super()._elementwise(T)[1]

    def _attention_seconds(self, b: Batch) -> tuple[float, float, float]:
        dt, pt, ot = super()._attention_seconds(b)
        if b.prefill_lens and b.num_decodes:  # a mixed batch joins the prefill and decode attention outputs
            ot += self._per_tokens("concat", b.num_tokens)
        return dt, pt, ot

    def _per_tokens(self, op: str, tokens: int) -> float:
        """All layers' `concat` or `write_kv` kernels over `tokens` tokens (remembered: few counts recur)."""
        t = self._by_tokens.get((op, tokens))
        if t is None:
            if op == "concat":
                t = self.model.layers * float(self.profile.elementwise_time(op, tokens, self.attn_width))
            else:
                t = float(self._kv_write(op, tokens))
            self._by_tokens[(op, tokens)] = t
        return t

    def _kv_write(self, op: str, tokens) -> float:
        """Storing K and V of `tokens` new tokens in every layer's cache (`dequant_kv`: widening them from it)."""
        return 2 * self.model.layers * self.profile.elementwise_time(op + self.kv_suffix, tokens,
                                                                     self.hkv * self.model.head_dim)  # fmt: skip

    def _prefill_one(self, grid, n: int, c: int) -> float:
        """One chunk's attention in one layer (`prefill_attention`), noting an extrapolation."""
        top = grid.keys[-1]
        if n > top:
            self._note(f"prefill attention of chunks longer than {int(top):,} tokens extrapolated from the measured "
                       f"{int(top):,}-token chunk by its FLOPs (quadratic in the chunk, linear in the cached context)")
        return prefill_attention(grid, n, c)

    def _decode_attention(self, n: int, ctx_sum, q: int = 1):
        grid = self.decode_grid
        if grid is None:
            return super()._decode_attention(n, ctx_sum, q)
        attn = self.model.layers * grid(n, ctx_sum / n)  # ctx_sum: a number or an array
        if q > 1:  # a verify pass reads the cache once; its extra queries can only make it compute-bound
            fc = self._decode_attn_coeffs()[0]
            attn = np.maximum(attn, self.model.layers * (q * fc * ctx_sum / self.attn_peak + self.p.kernel_overhead_s))
        fixed = self._decode_extra.get(n * q)
        if fixed is None:  # depends on the token count only (MLA's table holds its cache write and absorption)
            t = n * q
            fixed = 0.0 if self.model.is_mla else self._decode_fixed(t) + float(self._kv_write("write_kv_decode", t))
            self._decode_extra[t] = fixed
        return attn + fixed

    def _decode_breaks(self, n: int, q: int = 1) -> list[float]:
        grid = self.decode_grid
        if grid is None:
            return super()._decode_breaks(n, q)
        c0, c1, _ = grid.bracket(n)
        return c0.xs + (c1.xs if c1 is not None else []) + (RooflineModel._decode_breaks(self, n, q) if q > 1 else [])

    def _prefill_seconds(self, b: Batch) -> float:
        grid = self.prefill_grid
        if grid is None:
            return super()._prefill_seconds(b)
        t = self.model.layers * sum(self._prefill_one(grid, n, c) for n, c in zip(b.prefill_lens, b.prefill_ctx,
                                                                                   strict=True))  # fmt: skip
        if self.model.is_mla:  # its table holds the cache write and the latent's decompression
            return t
        if self.kv_suffix:  # an fp8 cache is widened to bf16 before the bf16 prefill kernel reads it
            t += sum(float(self._kv_write("dequant_kv", n + c)) for n, c in zip(b.prefill_lens, b.prefill_ctx,
                                                                                strict=True))  # fmt: skip
        return t + self._per_tokens("write_kv", b.num_prefill_tokens)


def prefill_attention(grid, n: int, c: int) -> float:
    """Seconds of one chunk's causal attention in one layer from a profile's prefill grid: measured, or past the
    longest measured chunk, scaled from it by the FLOPs (quadratic in the chunk, linear in the context before it)."""
    top = grid.keys[-1]
    if n <= top:
        return float(grid(n, c))
    c0 = min(c, grid.rows[top].xs[-1])
    return float(grid(top, c0)) * _pairs(n, c) / _pairs(top, c0)


def _pairs(n: float, c: float) -> float:
    """Query-key pairs of causal attention for n new tokens after c cached ones: its FLOPs over a constant."""
    return n * c + n * (n + 1) / 2


def load_profile_for(gpu: str, profile_dir: str | Path | None = None) -> Profile | None:
    """The profile in `profile_dir`, or the one found for `gpu`, or None."""
    if profile_dir is not None:
        return load_profile(Path(profile_dir))
    path = find_profile(gpu)
    return load_profile(path) if path else None


def make_perf_model(model: ModelSpec, gpu: GPUSpec, layout: Layout | None = None, dtype: str = "bf16",
                    kv_dtype: str | None = None, kind: str = "auto", profile_dir: str | Path | None = None,
                    **options) -> RooflineModel:  # fmt: skip
    """`auto` uses the GPU's measured profile when there is one, else the roofline; `layout` is a checked
    `Layout` (one GPU by default).

    `options` take expert_skew, network_gbs and quant (see RooflineModel).
    """
    if kind not in ("auto", "profiled", "roofline"):
        raise ServesimError(f"perf model '{kind}' is unknown; use auto, profiled or roofline")
    if gpu.kind == "cpu":  # the roofline with CPU parameters, fitted where the CPU has a profile (perf/cpu.py)
        from servesim.perf.cpu import cpu_perf_model

        return cpu_perf_model(model, gpu, layout, dtype, kv_dtype, kind, profile_dir, **options)
    if kind != "roofline":
        profile = load_profile_for(gpu.name, profile_dir)
        if profile is not None:
            return ProfiledModel(model, gpu, profile, layout, dtype, kv_dtype, **options)
        if kind == "profiled":
            have = ", ".join(profiled_gpus()) or "none"
            raise ServesimError(
                f"no measured profile for {gpu.name} (profiled GPUs: {have}); use --perf-model roofline"
            )
    return RooflineModel(model, gpu, layout, dtype, kv_dtype, **options)


def describe(perf: RooflineModel) -> str:
    """How the iterations are priced: the model, its profile and what it fell back on, then any mechanism that
    wraps it (speculative decoding, NanoFlow), each with its note."""
    inner = getattr(perf, "inner", None)
    if inner is not None:
        return f"{describe(inner)}; {perf.note}"
    if isinstance(perf, ProfiledModel):
        meta = perf.profile.meta
        fitted = f"; {' and '.join(perf.fitted)} priced by the roofline fitted to it" if perf.fitted else ""
        return f"profiled ({meta.get('device_name', perf.gpu.name)}, {meta.get('date', '?')}{fitted})"
    return getattr(perf, "source", "") or "roofline"  # a CPU's model says where its parameters came from


__all__ = ["ProfiledModel", "describe", "fitted_params", "load_profile_for", "make_perf_model"]

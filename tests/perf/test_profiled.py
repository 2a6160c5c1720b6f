"""The profiled model on the CPU: loading, interpolation, monotonicity, fallback, bad profiles."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.layout import Layout
from servesim.models import get_model
from servesim.perf import Batch, RooflineModel
from servesim.perf.energy import PowerModel
from servesim.perf.profile_data import SPIKE, find_profile, load_profile, profiled_gpus
from servesim.perf.profiled import ProfiledModel, describe, fitted_params, make_perf_model
from servesim.profiler.validate import compare, error_stats

H200 = get_gpu("h200")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "validation"


@pytest.fixture(scope="module")
def profile():
    return load_profile(find_profile("h200"))


@pytest.fixture(scope="module")
def llama(profile):
    return ProfiledModel(get_model("llama-3.1-8b"), H200, profile)


def test_shipped_profile(profile):
    assert "h200" in profiled_gpus()
    meta = profile.meta
    assert meta["device_name"] == "NVIDIA H200" and meta["torch"] and meta["driver"] and meta["date"]
    assert meta["total_seconds"] < 600  # profiling one GPU takes under 10 minutes
    assert {"idle", "compute", "memory"} <= set(profile.power)
    assert len(profile.gemm) > 100 and (32, 8, 128) in profile.decode and (40, 8, 128) in profile.prefill


def test_interpolation_is_exact_on_measured_points(profile):
    raw = pd.DataFrame(profile.raw["gemm.csv"])
    for (n, k), part in list(raw.groupby(["n", "k"]))[:20]:
        part = part.sort_values("m")
        measured = part.seconds.to_numpy()
        spike = np.append(measured[:-1] > SPIKE * measured[1:], False)  # a slow kernel choice at one M only
        m = part.m.to_numpy(float)
        cleaned = np.maximum.accumulate(measured[~spike])
        assert np.allclose(profile.gemm_time(m[~spike], int(n), int(k)), cleaned, rtol=1e-12)
        kept = measured[~spike] == cleaned  # points no earlier kept point exceeds are returned as measured
        assert kept[0] and kept[-1]
        assert np.all(np.diff(profile.gemm_time(np.arange(1.0, m[-1]), int(n), int(k))) >= 0)
    dec = pd.DataFrame(profile.raw["attention_decode.csv"])
    row = dec[(dec.hq == 32) & (dec.hkv == 8) & (dec.batch == 64) & (dec.ctx == 2048)].seconds.item()
    assert float(profile.decode[(32, 8, 128)](64, 2048.0)) == pytest.approx(row, rel=0.05)  # exact unless cleaned


def test_profiled_uses_measured_gemms(llama, profile):
    b = Batch.prefill(1024)
    mlp = next(o for o in llama.breakdown(b) if o.name == "mlp").seconds
    up = profile.gemm_time(1024.0, 28672, 4096)
    down = profile.gemm_time(1024.0, 4096, 14336)
    assert mlp == pytest.approx(32 * (up + down), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), ctx=st.integers(1, 20000), chunk=st.integers(1, 12000), prior=st.integers(0, 20000),
       extra=st.integers(1, 600))  # fmt: skip
def test_more_tokens_never_faster(n, ctx, chunk, prior, extra):
    m = make_perf_model(get_model("qwen2.5-14b"), H200)
    t = m.iteration_time(Batch.decode(n, ctx))
    assert m.iteration_time(Batch.decode(n, ctx + extra)) >= t * (1 - 1e-9)
    assert m.iteration_time(Batch.decode(n + 1, ctx)) >= t * (1 - 1e-9)
    p = m.iteration_time(Batch.prefill(chunk, prior))
    assert m.iteration_time(Batch.prefill(chunk + extra, prior)) >= p * (1 - 1e-9)
    assert m.iteration_time(Batch.prefill(chunk, prior + extra)) >= p * (1 - 1e-9)


def test_decode_times_vectorised_matches(llama):
    ctx = np.array([64 * 300, 64 * 3000, 64 * 30000])
    assert llama.decode_times(64, ctx) == pytest.approx([llama.iteration_time(Batch(64, int(c))) for c in ctx])


def test_fallback_to_fitted_roofline(profile):
    params = fitted_params(profile, H200)
    assert 0.5 < params.gemm_efficiency <= 0.95 and 0.6 <= params.mem_efficiency <= 0.95
    ds = ProfiledModel(get_model("deepseek-v3"), H200, profile, Layout(8))  # MLA: no measured attention layout
    roof = RooflineModel(get_model("deepseek-v3"), H200, params=params, layout=Layout(tp=8))
    # the latent-attention kernel is not profiled: it is priced by the fitted roofline (its absorption
    # GEMMs are profiled shapes, so they come from the tables)
    kernel = lambda m: m._decode_attention(32, 32 * 4096) - m._decode_fixed(32)  # noqa: E731
    assert kernel(ds) == pytest.approx(kernel(roof), rel=1e-12)
    assert ds._prefill_seconds(Batch.prefill(512, 256)) != roof._prefill_seconds(Batch.prefill(512, 256))
    assert profile.gemm_time(10.0, 12345, 678) is None


def test_fp8_priced_from_its_own_tables(profile):
    m = get_model("llama-3.1-8b")
    bf16, fp8 = ProfiledModel(m, H200, profile), ProfiledModel(m, H200, profile, dtype="fp8")
    kv8 = ProfiledModel(m, H200, profile, dtype="fp8", kv_dtype="fp8")
    assert fp8.fitted == kv8.fitted == [] and describe(kv8) == describe(bf16)
    # the layers' projections come from the fp8 table (activation cast included); the LM head stays bf16
    assert fp8.gemm_seconds(256, 6144, 4096) == pytest.approx(float(profile.gemm_time(256, 6144, 4096, fp8=True)))
    assert fp8.gemm_seconds(256, 6144, 4096) < 0.9 * bf16.gemm_seconds(256, 6144, 4096)
    lm = lambda perf: perf._gemm(np.asarray(8.0), m.vocab, m.hidden, wide=True)[0]  # noqa: E731
    assert lm(fp8) == lm(bf16) == pytest.approx(float(profile.gemm_time(8, m.vocab, m.hidden)))
    # decode attention over an fp8 cache: the measured fp8 grid, faster than bf16 at long context
    grid, L = profile.decode_fp8[(32, 8, 128)], m.layers
    step = kv8._decode_attention(32, 32 * 8192) - kv8._decode_attention(32, 32 * 2048)
    assert step == pytest.approx(L * (grid(32, 8192) - grid(32, 2048)))
    assert kv8._decode_attention(32, 32 * 8192) < 0.8 * fp8._decode_attention(32, 32 * 8192)
    # prefill over an fp8 cache adds the widening of its context to bf16, as the validation decoder runs it
    chunk, widen = Batch.prefill(512, 8192), kv8._kv_write("dequant_kv", 512 + 8192)
    assert kv8._prefill_seconds(chunk) == pytest.approx(fp8._prefill_seconds(chunk) + widen - fp8._kv_write(
        "write_kv", 512) + kv8._kv_write("write_kv", 512))  # fmt: skip


def test_fp8_falls_back_where_the_profile_has_no_fp8_section(copy_profile):
    for name in ("gemm_fp8.csv", "attention_decode_fp8.csv", "elementwise_fp8.csv"):
        (copy_profile / name).unlink()
    prof, m = load_profile(copy_profile), get_model("llama-3.1-8b")
    assert not prof.gemm_fp8 and not prof.decode_fp8
    kv8 = ProfiledModel(m, H200, prof, dtype="fp8", kv_dtype="fp8")
    assert kv8.fitted == ["fp8 GEMMs", "fp8-KV attention"]
    assert describe(kv8).endswith("fp8 GEMMs and fp8-KV attention priced by the roofline fitted to it)")
    roof = RooflineModel(m, H200, dtype="fp8", kv_dtype="fp8", params=fitted_params(prof, H200))
    assert kv8._decode_attention(16, 16 * 4096) == roof._decode_attention(16, 16 * 4096)
    assert kv8.gemm_seconds(256, 6144, 4096) == roof.gemm_seconds(256, 6144, 4096)


def test_selection():
    assert isinstance(make_perf_model(get_model("llama-3.1-8b"), H200), ProfiledModel)
    assert isinstance(make_perf_model(get_model("llama-3.1-8b"), get_gpu("h100")), ProfiledModel)
    a100 = get_gpu("a100")
    assert type(make_perf_model(get_model("llama-3.1-8b"), a100)) is RooflineModel
    assert type(make_perf_model(get_model("llama-3.1-8b"), H200, kind="roofline")) is RooflineModel
    with pytest.raises(ServesimError, match="no measured profile for a100-80gb-sxm.*h100-sxm, h200"):
        make_perf_model(get_model("llama-3.1-8b"), a100, kind="profiled")


@pytest.fixture
def copy_profile(tmp_path):
    dst = tmp_path / "h200"
    shutil.copytree(find_profile("h200"), dst)
    load_profile.cache_clear()
    yield dst
    load_profile.cache_clear()


def test_user_profile_dir(copy_profile, monkeypatch):
    monkeypatch.setenv("SERVESIM_PROFILE_DIR", str(copy_profile.parent))
    assert find_profile("h200") == copy_profile


def test_missing_table(copy_profile):
    (copy_profile / "gemm.csv").unlink()
    with pytest.raises(ServesimError, match="incomplete: gemm.csv missing"):
        load_profile(copy_profile)


def test_corrupt_table(copy_profile):
    lines = (copy_profile / "attention_decode.csv").read_text().splitlines()
    lines[5] = "32,8,128,oops,512,1e-5"
    (copy_profile / "attention_decode.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ServesimError, match="attention_decode.csv line 6: a value is not a number"):
        load_profile(copy_profile)


def test_bad_meta(copy_profile):
    meta = json.loads((copy_profile / "meta.json").read_text())
    meta["format_version"] = 99
    (copy_profile / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ServesimError, match="format 99"):
        load_profile(copy_profile)
    (copy_profile / "meta.json").write_text("{")
    with pytest.raises(ServesimError, match="not valid JSON"):
        load_profile(copy_profile)
    with pytest.raises(ServesimError, match="not found"):
        load_profile(copy_profile / "nope")


def test_energy(profile, llama):
    power = PowerModel.for_gpu(H200, profile)
    assert power.source == "measured" and power.idle_w < power.memory_w < power.compute_w
    ops = llama.breakdown(Batch.prefill(8192))
    assert power.memory_w < power.watts(ops) <= power.compute_w  # prefill is mostly compute-bound
    dec = llama.breakdown(Batch.decode(8, 1024))
    assert power.watts(dec) < power.watts(ops)
    assert power.joules(ops) == pytest.approx(power.watts(ops) * sum(o.seconds for o in ops))
    sheet = PowerModel.for_gpu(get_gpu("h100"))
    assert sheet.source == "datasheet" and sheet.compute_w == 700


ARCHIVE = DOCS / "packed-gqa-decode"  # earlier validations, with the profiles they were compared against
RUNS = sorted(DOCS.glob("measured_*.csv")) + sorted(ARCHIVE.glob("measured_*.csv"))


@pytest.mark.parametrize("run", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recorded_validation(run):
    """Guard against regressions on every forward-pass measurement recorded on a GPU (docs/validation).

    The figures of record are in docs/validation.md; this guard allows about half a point of run-to-run drift
    above the worst of them (median 5.3%, P90 10.5%, worst 12.4%). Earlier measurements, made with the
    packed-GQA decode kernel, are compared with the profiles of that time, kept beside them.
    """
    measured = pd.read_csv(run)
    spec, gpu = get_model(measured.model[0]), get_gpu(measured.gpu[0])
    dt, kvd = (str(measured[c][0]) if c in measured else "bf16" for c in ("dtype", "kv_dtype"))
    tp = int(measured.tp[0]) if "tp" in measured else 1  # (tensor-parallel runs: one row per batch, all ranks)
    if run.parent == ARCHIVE:
        perf = ProfiledModel(spec, gpu, load_profile(ARCHIVE / "profiles" / gpu.name))
    else:
        perf = make_perf_model(spec, gpu, Layout(tp), dtype=dt, kv_dtype=kvd)
        # every GPU with a recorded validation ships its profile, fp8 kernels (and TP collectives) included
        assert describe(perf).startswith("profiled") and "roofline" not in describe(perf)
    roof = RooflineModel(spec, gpu, dtype=dt, kv_dtype=kvd, layout=Layout(tp=tp))
    df = compare(measured, {"profiled": perf, "roofline": roof})
    prof, roof = error_stats(df, "profiled"), error_stats(df, "roofline")
    assert prof["median_ape"] <= 5.8 and prof["p90_ape"] <= 11.0 and prof["max_ape"] <= 15.0
    assert prof["median_ape"] < roof["median_ape"] / 3


def test_both_gpus_have_recorded_validations():
    runs = {(t.gpu[0], t.model[0], t.get("dtype", pd.Series(["bf16"]))[0], t.get("kv_dtype", pd.Series(["bf16"]))[0])
            for t in map(pd.read_csv, DOCS.glob("measured_*.csv"))}  # fmt: skip
    for gpu in ("h100-sxm", "h200"):
        for model in ("llama-3.1-8b", "qwen2.5-14b"):
            for dtypes in (("bf16", "bf16"), ("fp8", "bf16"), ("fp8", "fp8")):
                assert (gpu, model, *dtypes) in runs


def test_long_context_decode_is_priced_as_engines_run_it():
    """A few sequences at long context read their cache near HBM bandwidth (split-KV decode), as measured."""
    measured = pd.read_csv(DOCS / "measured_h100-sxm_llama-3.1-8b.csv")
    long = measured[(measured.kind == "decode") & (measured.decode_ctx >= 16384) & (measured.decodes <= 4)]
    assert len(long) == 6
    spec, gpu = get_model("llama-3.1-8b"), get_gpu("h100-sxm")
    df = compare(long, {"profiled": make_perf_model(spec, gpu)})
    assert df.profiled_ape.max() < 5.0


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_stored_roofline_fit_is_the_fit_of_the_shipped_tables(gpu):
    """The fit kept beside a shipped profile (to spare each run its search) is what the search gives."""
    from servesim.hardware import get_gpu
    from servesim.perf.profile_data import find_profile, load_profile
    from servesim.perf.profiled import FIT_FILE, _fit, fitted_params

    profile, spec = load_profile(find_profile(gpu)), get_gpu(gpu)
    stored = json.loads((profile.path / FIT_FILE).read_text())
    assert stored["key"]["tables"] == profile.digest  # not stale
    assert fitted_params(profile, spec) == _fit(profile, spec.peak_flops("bf16"), spec.mem_bw_gbs * 1e9)


def test_measured_all_reduce_replaces_the_link_model(copy_profile):
    """A profile's CUDA-graph-timed all-reduce table prices TP collectives at its GPU counts; others keep the
    link model, and profiles without the table (the shipped ones) are unchanged."""
    sizes = [2**e for e in range(10, 31)]
    rows = [f"all_reduce,2,{b},{8e-6 + b / 300e9:.6g}" for b in sizes]
    (copy_profile / "collectives.csv").write_text("op,world,bytes,seconds\n" + "\n".join(rows) + "\n")
    prof, m = load_profile(copy_profile), get_model("llama-3.1-70b")
    tp2, tp4 = ProfiledModel(m, H200, prof, Layout(2)), ProfiledModel(m, H200, prof, Layout(4))
    assert tp2._allreduce(2**20) == pytest.approx(8e-6 + 2**20 / 300e9, rel=1e-5)
    assert tp2._allreduce(3 * 2**29) > tp2._allreduce(2**30)  # past the table: the measured bandwidth
    assert tp2._allreduce(1.0) == pytest.approx(8e-6 + 2**10 / 300e9, rel=1e-5)  # below it: the smallest size
    link = ProfiledModel(m, H200, load_profile(find_profile("h200")), layout=Layout(tp=4))
    assert tp4._allreduce(2**20) == link._allreduce(2**20)  # no table for 4 GPUs
    h100 = ProfiledModel(m, get_gpu("h100"), load_profile(find_profile("h100-sxm")), layout=Layout(tp=2))
    assert h100._allreduce(2**20) == RooflineModel._allreduce(h100, 2**20)  # no table shipped for the H100
    shipped = ProfiledModel(m, H200, load_profile(find_profile("h200")), Layout(2))  # the H200's measured table
    assert shipped._allreduce(2**20) != RooflineModel._allreduce(shipped, 2**20)
    assert 5e-6 < shipped._allreduce(2**10) < 2e-5  # a small all-reduce over NVLink: ~9 us, measured


def _moe_table(path: Path, rows: list[tuple]) -> None:
    path.write_text("op,hidden,width,experts,tokens,seconds\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def test_moe_layers_are_priced_from_their_grouped_kernel_tables(copy_profile):
    """Measured grouped kernels where the profile has the layer's split, the fitted roofline (with a note) where
    not; routing from its own rows."""
    m = get_model("qwen3-30b-a3b")  # 128 experts of 768, top 8, hidden 2048
    copies = [1, 64, 512, 4096, 65536]
    _moe_table(copy_profile / "moe.csv", [("experts", 2048, 768, 128, c, 1e-4 + c * 1e-8) for c in copies]
               + [("route", 0, 8, 128, t, 5e-6 + t * 1e-9) for t in (1, 1024, 16384)])  # fmt: skip
    prof = load_profile(copy_profile)
    tp1 = ProfiledModel(m, H200, prof)
    moe = lambda p, b: {o.name: o for o in p.breakdown(b)}["moe"]  # noqa: E731
    b = Batch.decode(64, 1024)  # 512 routed copies per layer
    router = tp1._gemm(np.array([64.0]), 128, 2048, wide=True)[0][0]
    want = m.moe_layers * (1e-4 + 512e-8 + 5e-6 + 64e-9) + m.moe_layers * router
    assert moe(tp1, b).seconds == pytest.approx(want, rel=1e-9)
    assert not tp1.outside
    tp2 = ProfiledModel(m, H200, prof, Layout(2))  # 384 wide on each GPU: not in the table
    assert moe(tp2, b).seconds > 0 and any("128 experts 384 wide" in n for n in tp2.outside)


def test_long_prefill_past_the_grid_scales_with_its_flops(profile, llama):
    top = profile.prefill_max[(32, 8, 128)]
    one = llama._prefill_one(llama.prefill_grid, top, 0)
    assert llama._prefill_one(llama.prefill_grid, 2 * top, 0) == pytest.approx(
        one * (2 * top * (2 * top + 1)) / (top * (top + 1)), rel=1e-12)  # about 4x: quadratic, not linear
    assert llama._prefill_one(llama.prefill_grid, 2 * top, top) > llama._prefill_one(llama.prefill_grid, 2 * top, 0)
    assert any("extrapolated" in n for n in llama.outside)
    fresh = ProfiledModel(get_model("llama-3.1-8b"), H200, profile)
    fresh.iteration_time(Batch.prefill(top))
    assert not fresh.outside  # within the grid: nothing to say


def test_head_layout_measured_only_past_the_grid_is_not_extrapolated_down():
    """The H100 profile measured Llama-3.2-1B's heads (32, 8, 64) only at 16k-128k-token prompts; extrapolating
    those down to a 512-token chunk priced it ~1000x too slow (a speculative draft model 10x slower than its
    target): such a layout is priced by the fitted roofline, well under the 8B model's measured prefill."""
    h100 = get_gpu("h100-sxm")
    prof = load_profile(find_profile("h100-sxm"))
    assert (32, 8, 64) not in prof.prefill
    small = ProfiledModel(get_model("llama-3.2-1b"), h100, prof)
    big = ProfiledModel(get_model("llama-3.1-8b"), h100, prof)
    assert small.iteration_time(Batch.prefill(512)) < big.iteration_time(Batch.prefill(512))


COLLAPSE = DOCS / "moe-router-collapse"  # Qwen3-30B-A3B on the H100, measured before the decoder's routing bias


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_recorded_moe_validation(dtype):
    """Guard the MoE pricing against the Qwen3-30B-A3B forward passes measured on the H100 (docs/validation.md,
    "Mixture of experts, measured"). Those passes routed by the random model's own router, which collapses a short
    prompt onto a few experts, so prefills under 2,048 tokens without cached context are left out; the fp8 rows
    also leave out batches of 16,384-32,768 routed copies, past a kernel step the shipped table's grid does not see."""
    suffix = "" if dtype == "bf16" else "_fp8_kvbf16"
    spec, gpu = get_model("qwen3-30b-a3b"), get_gpu("h100")
    measured = pd.read_csv(COLLAPSE / f"measured_h100-sxm_qwen3-30b-a3b{suffix}.csv")
    short = (measured.kind == "prefill") & (measured.chunk < 2048) & (measured.chunk_ctx == 0)
    copies = (measured.chunk + measured.decodes) * spec.top_k
    past = (copies > 16384) & (copies < 32768) if dtype == "fp8" else False
    kept = measured[~short & ~past].reset_index(drop=True)
    perf = make_perf_model(spec, gpu, Layout(1), dtype=dtype, kv_dtype="bf16")
    assert describe(perf).startswith("profiled") and "roofline" not in describe(perf)
    df = compare(kept, {"profiled": perf})
    st = error_stats(df, "profiled")
    assert st["points"] >= 40 and st["median_ape"] <= 5.0 and st["p90_ape"] <= 10.0 and st["max_ape"] <= 15.0


def test_mla_is_priced_from_its_measured_tables():
    """The H100 profile measures MLA (decodes absorbed, prompts decompressed): DeepSeek-V2-Lite is priced from it,
    its cache write and absorption inside the table (no separate KV write), and the H200, unmeasured, says so."""
    spec = get_model("deepseek-v2-lite")
    h100 = make_perf_model(spec, get_gpu("h100"))
    assert h100.decode_grid is not None and h100.prefill_grid is not None
    assert not any("MLA" in n for n in h100.outside)
    grid = h100.profile.mla_decode[(16, 512, 64, 128, 128)]
    assert h100._decode_attention(32, 32 * 2048.0) == pytest.approx(spec.layers * grid(32, 2048.0))
    h200 = make_perf_model(spec, get_gpu("h200"))
    assert h200.decode_grid is None and any("MLA attention priced by the roofline" in n for n in h200.outside)
    # the measured grid covers every catalog MLA split; the TP8 split of DeepSeek-V3 shares V2-Lite's 16 heads
    assert set(h100.profile.mla_decode) == set(h100.profile.mla_prefill) and len(h100.profile.mla_decode) == 7

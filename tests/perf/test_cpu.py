"""The CPU model: parameters fitted to the shipped CI-machine profile, defaults elsewhere (no torch needed)."""

import numpy as np
import pandas as pd
import pytest

from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.models import get_model
from servesim.perf.batch import Batch
from servesim.perf.cpu import (
    DEFAULT_CPU_PARAMS,
    CPUModel,
    cpu_perf_model,
    find_cpu_profile,
    fit_cpu_params,
    gemm_roofline,
    load_cpu_profile,
)
from servesim.perf.profile_data import BUILTIN
from servesim.perf.profiled import describe, make_perf_model

CI = "epyc-zen4-2vcpu"
# named cpu_*, not measured_*: tests/perf/test_profiled.py guards every measured_*.csv as a GPU run
MEASURED = BUILTIN.parents[3] / "docs" / "validation" / f"cpu_{CI}_llama-3.2-1b.csv"
GEMM_MEDIAN_TOLERANCE = 0.10  # median relative error of the fitted roofline over the GEMMs it was fitted to


@pytest.fixture
def shipped():
    path = find_cpu_profile(CI)
    assert path is not None, "the CI machine's CPU profile ships under perf/profiles/cpu/"
    return load_cpu_profile(path)


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_is_physical_and_reproduces_the_gemms(shipped, threads):
    g = get_gpu(CI)
    p = fit_cpu_params(shipped, g, threads)
    assert 0.3 <= p.gemm_efficiency <= 1.0 and 1 <= p.gemm_half_rows <= 512
    assert 0.05 <= p.mem_efficiency <= 1.0 and 0.02 <= p.attn_efficiency <= 1.0
    assert 1e-7 <= p.kernel_overhead_s <= 1e-4
    gemm = shipped.tables["gemm.csv"]
    gemm = gemm[gemm.threads == threads]
    peak = g.peak_flops() * threads / shipped.meta["cores"]
    pred = gemm_roofline(gemm.m.to_numpy(float), gemm.n.to_numpy(float), gemm.k.to_numpy(float), peak,
                         g.mem_bw_gbs * 1e9, p.gemm_efficiency, p.gemm_half_rows, p.mem_efficiency,
                         p.kernel_overhead_s)  # fmt: skip
    err = np.abs(pred - gemm.seconds.to_numpy()) / gemm.seconds.to_numpy()
    assert np.median(err) <= GEMM_MEDIAN_TOLERANCE, np.median(err)


def test_make_perf_model_prices_cpus_with_cpu_parameters(shipped):
    llama = get_model("llama-3.2-1b")
    ci = make_perf_model(llama, get_gpu(CI))
    assert isinstance(ci, CPUModel) and ci.p == fit_cpu_params(shipped, get_gpu(CI))
    assert "fitted to the epyc-zen4-2vcpu profile" in describe(ci)
    other = make_perf_model(llama, get_gpu("epyc-9654"))
    assert isinstance(other, CPUModel) and other.p == DEFAULT_CPU_PARAMS
    assert "default CPU parameters" in describe(other)
    assert make_perf_model(llama, get_gpu(CI), kind="roofline").p == DEFAULT_CPU_PARAMS
    with pytest.raises(ServesimError, match="no CPU profile for epyc-9654"):
        make_perf_model(llama, get_gpu("epyc-9654"), kind="profiled")
    assert describe(make_perf_model(llama, get_gpu("h100-sxm"))).startswith("profiled")  # GPUs as before


def test_cpu_decode_is_slower_than_its_bandwidth_allows(shipped):
    """A 1B decode on 2 cores: bf16 GEMVs run below DRAM bandwidth, so a step takes longer than reading the
    weights once at the measured streaming rate."""
    llama = get_model("llama-3.2-1b")
    perf = make_perf_model(llama, get_gpu(CI))
    step = perf.iteration_time(Batch.decode(1, 512))
    stream = llama.weight_bytes("bf16") / (get_gpu(CI).mem_bw_gbs * 1e9)
    assert stream < step < 20 * stream


def test_fewer_threads_price_a_share_of_the_peak():
    llama = get_model("llama-3.2-1b")
    one, two = (cpu_perf_model(llama, get_gpu(CI), threads=n) for n in (1, 2))
    assert one.gpu.bf16_tflops == pytest.approx(two.gpu.bf16_tflops / 2)
    big = Batch.prefill(512)
    assert one.iteration_time(big) > 1.5 * two.iteration_time(big)


def test_bad_cpu_profiles_refused(tmp_path, shipped):
    with pytest.raises(ServesimError, match="meta.json missing"):
        load_cpu_profile(tmp_path)
    with pytest.raises(ServesimError, match="not a CPU profile"):
        load_cpu_profile(BUILTIN / "h200")
    with pytest.raises(ServesimError, match="no measurement at 3 threads"):
        fit_cpu_params(shipped, get_gpu(CI), 3)


def test_shipped_validation_is_within_its_recorded_error():
    """The recorded CPU validation (docs/validation.md) predicts its measured forward passes."""
    from servesim.profiler.validate import compare, error_stats

    df = pd.read_csv(MEASURED)
    llama = get_model("llama-3.2-1b")
    threads = int(df.threads.iloc[0])
    df = compare(df[["kind", "chunk", "chunk_ctx", "decodes", "decode_ctx", "measured_s"]],
                 {"cpu": cpu_perf_model(llama, get_gpu(CI), threads=threads)})  # fmt: skip
    st = error_stats(df, "cpu")
    assert st["points"] >= 15 and st["median_ape"] < 20.0, st

"""`servesim profile --device cpu` and `servesim validate --device cpu`: tables, refusals, a tiny validation."""

import json

import pandas as pd
import pytest

from servesim.errors import ServesimError
from servesim.profiler import cpu
from tests.test_cli import invoke, one_line_error


@pytest.fixture
def tiny_grid(monkeypatch):
    """The quick profile shrunk to seconds: fewer token counts, small arrays, short timing."""
    monkeypatch.setattr(cpu, "M_QUICK", (1, 4))
    monkeypatch.setattr(cpu, "BW_QUICK", (8 * cpu.MIB,))
    monkeypatch.setattr(cpu, "FLUSH_BYTES", 4 * cpu.MIB)
    monkeypatch.setattr(cpu, "TARGET_S", 0.001)


def test_quick_profile_writes_its_tables(tmp_path, tiny_grid):
    pytest.importorskip("torch")
    out = cpu.run_cpu_profile(tmp_path / "prof", [1], quick=True, log=lambda m: None)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "cpu" and meta["complete"] and meta["threads"] == [1] and meta["cores"] >= 1
    assert meta["cpu"] and meta["torch"] and meta["date"]
    for name, cols in cpu.TABLES.items():
        df = pd.read_csv(out / name)
        assert list(df.columns) == cols and len(df) > 0, name
        assert (df.threads == 1).all()
        assert (df.seconds > 0).all(), name
    gemm = pd.read_csv(out / "gemm.csv")
    assert set(gemm.m) == {1, 4} and gemm.shape[0] == 10  # five llama-3.2-1b shapes at two token counts
    assert set(pd.read_csv(out / "attention.csv").kind) == {"prefill", "decode"}
    # the profile it wrote is one the CPU model reads
    from servesim.hardware import get_gpu
    from servesim.perf.cpu import fit_cpu_params, load_cpu_profile

    p = fit_cpu_params(load_cpu_profile(out), get_gpu(cpu.THIS_CPU), 1)
    assert 0 < p.gemm_efficiency <= 1 and 0 < p.mem_efficiency <= 1


def test_thread_counts_parsed_and_refused():
    assert cpu.parse_threads("2,1,2", have=2) == [1, 2]
    assert cpu.parse_threads(None, have=4) == [1, 4]
    for bad, fragment in (("0", "0 is outside 1..2"), ("3", "3 is outside 1..2"), ("x", "'x' is not a whole")):
        with pytest.raises(ServesimError, match=fragment):
            cpu.parse_threads(bad, have=2)


def test_bad_cpu_flags_are_one_line(tmp_path):
    one_line_error(invoke("profile", "--device", "tpu", "-o", str(tmp_path / "p")), "--device tpu is unknown")
    one_line_error(invoke("profile", "--device", "cpu", "-o", str(tmp_path / "p"), "--threads", "0"),
                   "--threads: 0 is outside")  # fmt: skip
    many = str(cpu.cores() + 1)
    one_line_error(invoke("profile", "--device", "cpu", "-o", str(tmp_path / "p"), "--threads", many),
                   f"--threads: {many} is outside")  # fmt: skip
    one_line_error(invoke("profile", "-o", str(tmp_path / "p")), "needs --gpu NAME")
    one_line_error(invoke("validate", "--device", "tpu"), "--device tpu is unknown")
    one_line_error(invoke("validate", "--device", "cpu", "--threads", "0"), "--threads: 0 is outside")
    one_line_error(invoke("validate", "--device", "cpu", "--gpu", "h100-sxm"), "h100-sxm is a gpu, not a CPU")
    one_line_error(invoke("validate", "--device", "cpu", "--tp", "2"), "drop --measured")
    one_line_error(invoke("validate", "--threads", "2"), "pass it with --device cpu")
    assert not (tmp_path / "p").exists()


def test_validation_compare_on_a_tiny_grid():
    pytest.importorskip("torch")
    from servesim.hardware import get_gpu
    from servesim.models import ModelSpec
    from servesim.perf.cpu import cpu_perf_model
    from servesim.profiler.validate import compare, error_stats

    spec = ModelSpec(name="tiny", model_type="llama", hidden=256, layers=2, heads=4, kv_heads=2, head_dim=64,
                     intermediate=512, vocab=1024, max_position=4096)  # fmt: skip
    grid = [("prefill", 16, 0, 0, 0), ("decode", 0, 0, 2, 64), ("mixed", 8, 0, 2, 32)]
    df = cpu.measure_cpu(spec, 1, grid, repeats=3, log=lambda m: None)
    assert list(df.kind) == ["prefill", "decode", "mixed"] and (df.measured_s > 0).all()
    df = compare(df, {"profiled": cpu_perf_model(spec, get_gpu(cpu.THIS_CPU), threads=1)})
    st = error_stats(df, "profiled")
    assert st["points"] == 3 and (df.profiled_s > 0).all() and st["max_ape"] >= st["median_ape"] >= 0

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from servesim.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_help_everywhere():
    for cmd in ([], ["run"], ["step"], ["models"], ["gpus"]):
        res = invoke(*cmd, "--help")
        assert res.exit_code == 0 and "Usage" in res.output


def test_run_defaults_table():
    res = invoke("run", "--num-requests", "60")
    assert res.exit_code == 0, res.output
    assert "Successful requests" in res.output and "Median TTFT (ms)" in res.output
    assert "llama-3.1-8b on h100-sxm TP1, scheduler vllm" in res.output


def test_run_flags_json_and_output(tmp_path):
    res = invoke("run", "--model", "qwen2.5-14b", "--gpu", "h200", "--rate", "12", "--num-requests", "80",
                 "--max-num-seqs", "32", "--max-num-batched-tokens", "2048", "--goodput", "ttft:300 tpot:40",
                 "--json", "--output", str(tmp_path), "--format", "csv")  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["completed"] == 80 and summary["slo"] == {"ttft_ms": 300, "tpot_ms": 40}
    assert summary["batch_size"]["max"] <= 32
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["completed"] == 80
    records = pd.read_csv(tmp_path / "requests.csv")
    assert len(records) == 80 and {"ttft_s", "tpot_s", "e2el_s", "itl_mean_s"} <= set(records.columns)
    scenario = json.loads((tmp_path / "scenario.json").read_text())
    assert scenario["model"] == "qwen2.5-14b" and scenario["engine"]["max_num_seqs"] == 32


def test_run_config_with_overrides(fixtures, tmp_path):
    res = invoke("run", "-c", str(fixtures / "scenario.toml"), "--num-requests", "10", "-o", str(tmp_path), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["completed"] == 10
    assert pd.read_parquet(tmp_path / "requests.parquet").shape[0] == 10


def test_run_trace_replay(fixtures):
    res = invoke("run", "--trace", str(fixtures / "mooncake_small.jsonl"), "--arrival", "trace", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["completed"] == 4 and s["kv_cache"]["prefix_hit_rate"] > 0


def test_step_json_breakdown():
    res = invoke("step", "--model", "llama-3.1-8b", "--gpu", "h100", "--decode", "64x2048", "--prefill", "512",
                 "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["batch"]["num_tokens"] == 576 and doc["batch"]["prefill_lens"] == [512]
    assert abs(sum(doc["breakdown"].values()) - doc["seconds"]) < 1e-12
    assert {"attention", "mlp", "qkv_proj", "lm_head"} <= set(doc["breakdown"])
    assert all(op["bound"] in ("compute", "memory", "comm", "overhead") for op in doc["ops"])


def test_step_table_and_tp():
    res = invoke("step", "--model", "llama-3.1-70b", "--tp", "4", "--prefill", "1024:2048", "--decode", "8x100")
    assert res.exit_code == 0, res.output
    assert "tp_comm" in res.output and "compute" in res.output and "total" in res.output


def test_step_wide_expert_parallelism_with_data_parallel_attention():
    """DeepSeek-V3 as it is served on eight GPUs: attention data-parallel, experts spread over all eight; the batch
    is one rank's, the energy every GPU's, and the run says what it priced past its measurements."""
    res = invoke("step", "--model", "deepseek-v3", "--gpu", "h100", "--dp", "8", "--ep", "8", "--dtype", "fp8",
                 "--kv-cache-dtype", "bf16", "--decode", "40x1500", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["layout"] == "TP1 DP8 EP8" and doc["gpus"] == 8
    assert doc["joules"] == pytest.approx(doc["watts_per_gpu"] * doc["seconds"] * 8)
    notes = " ".join(doc["notes"])
    assert "EP8 all-to-all" in notes and "FlashMLA" in notes  # link-model collectives; our own MLA kernel's speed
    one = json.loads(invoke("step", "--model", "deepseek-v3", "--gpu", "h100", "--tp", "8", "--ep", "8", "--dtype",
                            "fp8", "--kv-cache-dtype", "bf16", "--decode", "40x1500", "--json").stdout)  # fmt: skip
    assert one["layout"] == "TP8 EP8" and one["breakdown"]["attention"] < doc["breakdown"]["attention"]  # 16 heads
    bad = invoke("step", "--model", "llama-3.1-8b", "--dp", "2", "--decode", "1x10")
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_catalog_listings():
    res = invoke("models")
    assert res.exit_code == 0 and "deepseek-v3" in res.output and "671" in res.output
    res = invoke("gpus")
    assert res.exit_code == 0 and "mi300x" in res.output and "roofline" in res.output
    from servesim.report.table import gpus_table

    table = gpus_table()
    models = dict(zip(table.columns[0]._cells, table.columns[-1]._cells, strict=True))
    assert models["h100-sxm"].startswith("profiled bf16+fp8") and models["h200"].startswith("profiled bf16+fp8")


def test_validate_from_recorded_measurements(tmp_path):
    measured = str(Path(__file__).parents[1] / "docs" / "validation" / "measured_h200_llama-3.1-8b.csv")
    res = invoke("validate", "--model", "llama-3.1-8b", "--gpu", "h200", "--measured", measured,
                 "--out", str(tmp_path / "v.csv"))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "profiled  median APE" in res.output and "roofline  median APE" in res.output
    df = pd.read_csv(tmp_path / "v.csv")
    assert {"measured_s", "profiled_s", "roofline_s", "profiled_ape"} <= set(df.columns) and len(df) == 60


def test_kv_cache_dtype_flag():
    fp8 = json.loads(invoke("run", "--num-requests", "20", "--kv-cache-dtype", "fp8", "--json").stdout)
    bf16 = json.loads(invoke("run", "--num-requests", "20", "--json").stdout)
    assert fp8["memory"]["kv_cache_tokens"] > 1.9 * bf16["memory"]["kv_cache_tokens"]  # one byte a value
    assert fp8["perf_model"] == bf16["perf_model"]  # the shipped profile measures fp8 kernels: no fallback
    one_line_error(invoke("run", "--gpu", "a100", "--dtype", "fp8"), "has no fp8 tensor cores")
    steps = {kv: json.loads(invoke("step", "--dtype", "fp8", "--kv-cache-dtype", kv, "--decode", "32x8192",
                                   "--json").stdout) for kv in ("auto", "fp8")}  # fmt: skip
    assert steps["auto"]["kv_cache_dtype"] == "bf16" and steps["fp8"]["kv_cache_dtype"] == "fp8"
    assert steps["fp8"]["breakdown"]["attention"] < 0.8 * steps["auto"]["breakdown"]["attention"]


def test_step_energy_and_perf_model():
    res = invoke("step", "--gpu", "h200", "--decode", "32x1024", "--json")
    doc = json.loads(res.stdout)
    assert doc["perf_model"].startswith("profiled") and doc["power_source"] == "measured"
    assert doc["joules"] == doc["watts_per_gpu"] * doc["seconds"]
    roof = json.loads(invoke("step", "--gpu", "h200", "--decode", "32x1024", "--json", "--perf-model",
                             "roofline").stdout)  # fmt: skip
    assert roof["perf_model"] == "roofline" and roof["seconds"] != doc["seconds"]
    res = invoke("run", "--gpu", "h200", "--num-requests", "30", "--json")
    assert json.loads(res.stdout)["perf_model"].startswith("profiled")


def one_line_error(res, fragment):
    assert res.exit_code == 2
    text = res.stderr.strip()
    assert "Traceback" not in res.output + text
    assert text.startswith("error:") and fragment in text
    assert len(text.splitlines()) == 1, text


def test_errors_are_one_line(tmp_path):
    one_line_error(invoke("run", "--model", "llama-9b"), "unknown model 'llama-9b'")
    one_line_error(invoke("run", "--gpu", "h900"), "unknown GPU 'h900'")
    one_line_error(invoke("run", "--rate", "-2"), "workload.rate")
    one_line_error(invoke("run", "--model", "llama-3.1-70b"), "does not fit")
    bad = tmp_path / "t.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,x,1\n")
    one_line_error(invoke("run", "--trace", str(bad)), "line 2")
    one_line_error(invoke("run", "--goodput", "ttft"), "ttft:MS")
    one_line_error(invoke("run", "--format", "xlsx"), "--format")
    one_line_error(invoke("step", "--decode", "64"), "COUNTxCTX")
    one_line_error(invoke("step", "--prefill", "a:b"), "LEN:CTX")
    one_line_error(invoke("step"), "at least one")
    one_line_error(invoke("step", "--tp", "3", "--decode", "1x1"), "must divide")
    no_profile = invoke("step", "--gpu", "a100", "--decode", "1x1", "--perf-model", "profiled")
    one_line_error(no_profile, "no measured profile for a100")
    one_line_error(invoke("step", "--decode", "1x1", "--perf-model", "magic"), "perf model 'magic'")
    one_line_error(invoke("profile", "--gpu", "h200", "--out", str(tmp_path / "p")), "servesim profile needs")
    one_line_error(invoke("validate", "--measured", str(tmp_path / "none.csv")), "not found")
    store = str(tmp_path / "s.sqlite")
    one_line_error(invoke("search", "--model", "llama-9b", "--slo", "p90_tpot:50", "--store", store), "unknown model")
    one_line_error(invoke("search", "--gpus", "h900", "--slo", "p90_tpot:50", "--store", store), "unknown GPU")
    one_line_error(invoke("search", "--store", store), "at least one SLO")
    one_line_error(invoke("search", "--slo", "p95_tpot:5", "--store", store), "must look like p90_ttft")
    one_line_error(invoke("search", "--tp", "1,x", "--slo", "p90_tpot:5", "--store", store), "comma-separated")
    one_line_error(invoke("search", "--objective", "speed", "--slo", "p90_tpot:5", "--store", store), "--objective")


def test_python_m_servesim_runs_the_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "servesim", "run", "--num-requests", "5"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Successful requests" in out.stdout


def test_run_streamed_writes_records_as_it_goes(tmp_path):
    res = invoke("run", "--replicas", "2", "--num-requests", "300", "--rate", "20", "--rate-shape", "1,3",
                 "--rate-period-s", "20", "--stream", "--output", str(tmp_path), "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["completed"] == 300 and any("streamed" in n for n in summary["notes"])
    records = pd.read_parquet(tmp_path / "requests.parquet")
    assert sorted(records.request_id) == list(range(300))
    assert (tmp_path / "power.csv").is_file()
    bad = invoke("run", "--num-requests", "5", "--stream", "--format", "csv", "-o", str(tmp_path / "x"))
    assert bad.exit_code != 0 and "--stream writes Parquet" in bad.output
    bad = invoke("run", "--num-requests", "5", "--rate-shape", "1,x")
    assert bad.exit_code != 0 and "comma list of numbers" in bad.output


def test_offline_reports_steady_state_throughput():
    doc = json.loads(invoke("run", "--offline", "--num-requests", "400", "--json").stdout)
    steady = doc["steady_state"]
    assert steady["output_throughput"] > doc["output_throughput"] and 0.2 <= steady["output_share"] <= 1
    assert "steady_state" not in json.loads(invoke("run", "--num-requests", "100", "--json").stdout)
    one_line_error(invoke("run", "--offline", "--rate", "3"), "--offline sends every request at once")


def test_outputs_never_overwrite_each_other_or_a_store(tmp_path):
    import sqlite3

    f, d, store = tmp_path / "f.html", tmp_path / "out", tmp_path / "s.sqlite"
    sqlite3.connect(store).execute("CREATE TABLE t (x)").connection.commit()
    cases = [
        (["run", "--report", str(f), "--trace-out", str(f)], "name the same file"),
        (["run", "-o", str(d), "--report", str(d / "summary.json")], "is a file --output writes"),
        (["search", "--store", str(store), "--best-out", str(store), "--slo", "p90_ttft:100"], "is a results store"),
        (["search", "--store", str(tmp_path / "new.sqlite"), "--report", str(tmp_path / "new.sqlite"), "--slo",
          "p90_ttft:100"], "name the same file"),
        (["run", "--report", str(store), "--num-requests", "5"], "is a results store"),
        (["pipeline", "--report", str(f), "--trace-out", str(f)], "name the same file"),
    ]
    for args, message in cases:
        res = invoke(*args)
        assert res.exit_code != 0 and message in res.output, (args, res.output)
    assert store.read_bytes().startswith(b"SQLite format 3")  # untouched


def test_catalog_names_are_never_cut_in_a_narrow_terminal():
    from rich.console import Console

    from servesim.hardware import catalog
    from servesim.models import model_names
    from servesim.report.table import gpus_table, models_table

    for table, names in ((models_table(), model_names()), (gpus_table(), list(catalog()))):
        console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(table)
        text = console.export_text()
        assert all(name in text for name in names), [n for n in names if n not in text]


def test_a_run_never_mixes_its_results_with_an_earlier_runs(tmp_path):
    out = tmp_path / "out"
    assert invoke("run", "--num-requests", "5", "-o", str(out)).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["files"] == ["summary.json", "scenario.json", "power.csv",
                                                                         "requests.parquet"]  # fmt: skip
    again = invoke("run", "--num-requests", "5", "--format", "csv", "-o", str(out))
    assert again.exit_code != 0 and "holds an earlier run's results" in again.output
    assert not (out / "requests.csv").exists()  # nothing of the second run beside the first's


def test_a_run_too_large_for_memory_is_warned_about(monkeypatch):
    import servesim.run as run

    monkeypatch.setattr(run, "available_bytes", lambda: 2**20)  # 1 MiB free
    res = invoke("run", "--num-requests", "300")
    assert "run of 300 requests needs about 0.0 GiB (3 KiB each)" in res.output and "pass --stream" in res.output
    monkeypatch.setattr(run, "available_bytes", lambda: 2**40)
    assert "pass --stream" not in invoke("run", "--num-requests", "300").output


def test_run_progress_counts_every_request_and_shows_only_on_a_terminal():
    import io

    from rich.console import Console

    from servesim import Scenario, WorkloadConfig, simulate
    from servesim.cli import RunProgress

    taken = []
    simulate(Scenario(workload=WorkloadConfig(num_requests=20_000, rate=500.0)), progress=taken.append)
    assert sum(taken) == 20_000 and len(taken) == 3  # told chunk by chunk (8,192 arrivals at a time)
    for terminal, enabled, shown in ((True, True, True), (False, True, False), (True, False, False)):
        out = io.StringIO()
        with RunProgress(20_000, enabled, after_s=0.0, console=Console(file=out, force_terminal=terminal)) as bar:
            for n in taken:
                bar(n)
        assert ("simulating" in out.getvalue()) == shown

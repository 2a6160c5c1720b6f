"""`servesim pipeline`: the command, the search, the Chrome trace and the HTML report."""

import json

from tests.report.test_reports import _chromium, render
from tests.test_cli import invoke, one_line_error

SMALL = ["--model", "llama-3.1-8b", "--pp", "4", "--tp", "1", "--micro-batches", "8", "--seq-len", "2048"]


def test_pipeline_command_json_trace_and_report(tmp_path):
    res = invoke("pipeline", *SMALL, "--schedule", "zb-h1", "--json", "--trace-out", str(tmp_path / "t.json"),
                 "--report", str(tmp_path / "r.html"))  # fmt: skip
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["schedule"] == "zb-h1" and s["gpus"] == 4 and len(s["bubble_per_stage"]) == 4
    assert s["tokens_per_s"] == 8 * 2048 / s["step_s"]
    trace = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    slices = [e for e in trace if e["ph"] == "X"]
    assert len(slices) == 3 * 8 * 4 and {e["cat"] for e in slices} == {"F", "B", "W"}
    assert {e["pid"] for e in slices} == {0, 1, 2, 3}
    res = invoke("pipeline", *SMALL)
    assert res.exit_code == 0 and "Bubble per device" in res.output and "1f1b" in res.output


def test_pipeline_search_ranks_by_throughput_within_memory():
    res = invoke("pipeline", "--model", "llama-3.1-8b", "--search", "--pps", "2,4", "--tps", "1,2", "--sizes", "1,2",
                 "--schedules", "1f1b,zb-h1", "--micro-batches", "8", "--seq-len", "2048", "--json",
                 "--memory-limit-gib", "60")  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 16
    fitting = [r for r in rows if r["fits"]]
    assert fitting and all(max(r["peak_memory_gib"]) <= 60 for r in fitting)
    assert [r["tokens_per_s"] for r in fitting] == sorted((r["tokens_per_s"] for r in fitting), reverse=True)
    assert rows.index(fitting[-1]) < min((i for i, r in enumerate(rows) if not r["fits"]), default=len(rows))


def test_pipeline_errors_are_one_line(tmp_path):
    one_line_error(invoke("pipeline", "--schedule", "zb"), "unknown pipeline schedule 'zb'")
    one_line_error(invoke("pipeline", "--schedule", "1f1b", "--chunks", "3"), "runs 1 chunk(s) per device")
    one_line_error(invoke("pipeline", "--model", "mixtral-8x7b"), "MoE or MLA")
    one_line_error(invoke("pipeline", "--pp", "0"), "pp")
    one_line_error(invoke("pipeline", "--search", "--pps", "x"), "--pps 'x'")
    one_line_error(invoke("pipeline", "--report", str(tmp_path)), "is a folder")


def test_pipeline_report_renders_in_a_browser(tmp_path):
    if _chromium() is None:
        import pytest

        pytest.skip("no Chromium (apt-get install chromium) for the browser test")
    from servesim.pipeline import PipelineConfig, simulate_pipeline
    from servesim.report.html import pipeline_report

    result = simulate_pipeline(PipelineConfig(model="llama-3.1-8b", pp=4, tp=1, micro_batches=8, schedule="zb-v"))
    page = pipeline_report(result, tmp_path / "p.html")
    dom, log = render(page, tmp_path, tmp_path / "p.png")
    assert "Uncaught" not in log and "SyntaxError" not in log, log[-2000:]
    assert dom.count('class="main-svg"') >= 2 * 3  # timeline, memory, bubble
    assert (tmp_path / "p.png").stat().st_size > 20_000


def test_example_pipeline_file_runs():
    from pathlib import Path

    from servesim.pipeline import simulate_pipeline
    from servesim.pipeline.config import load_pipeline_config

    path = Path(__file__).parents[2] / "examples" / "pipeline" / "llama70b_32xh100.toml"
    cfg = load_pipeline_config(path, {"micro_batches": 8})
    assert cfg.schedule == "zb-h1" and cfg.pp * cfg.tp == 32 and cfg.micro_batches == 8
    assert simulate_pipeline(cfg).summary()["gpus"] == 32
    res = invoke("pipeline", "--config", str(path), "--schedule", "1f1b", "--micro-batches", "8", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["schedule"] == "1f1b"

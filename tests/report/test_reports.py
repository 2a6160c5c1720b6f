import json
import shutil
import subprocess
from pathlib import Path

import pytest

from servesim import Scenario, WorkloadConfig, simulate
from servesim.report.html import run_report, search_report
from servesim.report.toml_out import write_scenario
from servesim.report.trace import chrome_trace
from servesim.search import SearchSpace, parse_targets, run_search


@pytest.fixture(scope="module")
def result():
    return simulate(Scenario(workload=WorkloadConfig(num_requests=300, seed=2), replicas=2))


def test_chrome_trace_has_every_iteration(result, tmp_path):
    doc = json.loads(chrome_trace(result, tmp_path / "t.json").read_text())
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == sum(len(x) for x in result.iter_ends)
    assert {e["pid"] for e in slices} == {0, 1}
    for rid, ends in enumerate(result.iter_ends):
        mine = [e for e in slices if e["pid"] == rid]
        assert mine[-1]["ts"] + mine[-1]["dur"] == pytest.approx(ends[-1] * 1e6, abs=1)
        assert all(e["dur"] > 0 for e in mine)


def test_run_report_is_self_contained(result, tmp_path):
    text = run_report(result, tmp_path / "r.html").read_text()
    assert "<script src=" not in text and "<link" not in text  # nothing to fetch: plotly.js is inline
    assert text.count('class="plotly-graph-div"') >= 5
    for title in ("Latency distributions", "Batch, KV cache and queue", "Per-replica load", "Power over time"):
        assert title in text


def test_scenario_file_round_trip(tmp_path):
    sc = Scenario(replicas=3, workload=WorkloadConfig(rate=7.5))
    path = write_scenario(sc, tmp_path / "best.toml", "header line")
    from servesim.config import load_scenario

    assert load_scenario(path) == sc


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--virtual-time-budget=15000",
]


def render(html: Path, tmp_path: Path, shot: Path) -> tuple[str, str]:
    chrome = _chromium()
    if chrome is None:
        pytest.skip("no Chromium (apt-get install chromium) for the browser test")
    profile = ["--user-data-dir=" + str(tmp_path / "profile"), "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run(
        [chrome, *FLAGS, *profile, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120
    )
    subprocess.run(
        [chrome, *FLAGS, *profile, f"--screenshot={shot}", "--window-size=1280,2600", html.as_uri()],
        capture_output=True,
        timeout=120,
    )
    return dom.stdout, dom.stderr


@pytest.mark.parametrize("kind", ["run", "search"])
def test_report_renders_in_a_browser(result, tmp_path, kind):
    if _chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium) for the browser test")
    if kind == "run":
        page, figures = run_report(result, tmp_path / "report.html"), 5
    else:
        space = SearchSpace(gpus=["h100-sxm", "h200"], replicas=[1, 2])
        out = run_search(
            Scenario(), space, parse_targets(["p90_tpot:30"]), str(tmp_path / "s.sqlite"), num_requests=120, workers=1
        )
        page, figures = (
            search_report(out, "goodput_per_dollar", parse_targets(["p90_tpot:30"]), tmp_path / "report.html"),
            3,
        )
    shot = tmp_path / f"{kind}.png"
    dom, log = render(page, tmp_path, shot)
    assert "Uncaught" not in log and "SyntaxError" not in log, log[-2000:]
    drawn = dom.count('class="main-svg"')
    assert drawn >= 2 * figures, f"only {drawn} plot surfaces drew"  # plotly draws two per figure
    assert shot.is_file() and shot.stat().st_size > 20_000

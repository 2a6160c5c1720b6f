"""Paper reproductions under experiments/ run, small, and show their paper's direction."""

import runpy
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def test_pipeline_schedules_experiment(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["pipeline_schedules.py", "--micro-batches", "16"])
    runpy.run_path(str(EXPERIMENTS / "pipeline_schedules.py"), run_name="__main__")
    out = capsys.readouterr().out
    study, textbook = out.split("(2)")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in study.splitlines() if " | " in line}
    gain = lambda name: float(rows[name][5].rstrip("%"))  # noqa: E731  ("vs 1F1B" column)
    assert 0 < gain("zb-h1") < gain("zb-h2")  # Zero Bubble beats 1F1B, more with more memory
    assert rows["zb-h2"][1] == "1"
    simulated = {line.split(" | ")[0]: line.split(" | ")[1:] for line in textbook.splitlines() if " | " in line}
    assert all(a == b for a, b in list(simulated.values())[1:])  # simulated bubble == textbook formula

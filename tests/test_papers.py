"""Every figure in docs/papers.md is one its command printed: each table row names `python experiments/X.py
ARGS`, docs/figures/X.txt holds what that command printed (`experiments/record.py`), and every number in the
row's servesim cell is found there. (`tests/test_experiments.py` reruns each experiment's small configuration
against docs/figures/X.check.txt, so a recording the code no longer reproduces fails too.)"""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))
from record import command, recording  # noqa: E402

ROOT = Path(__file__).parents[1]
PAPERS = ROOT / "docs" / "papers.md"
COMMAND = re.compile(r"`python experiments/(\w+)\.py([^`]*)`")
# a number standing on its own: not inside a name such as Llama-3.1-8B, H100 or P99
NUMBER = re.compile(r"(?:^|(?<=[\s(~$*/=≈]))[-+]?(\d[\d,]*(?:\.\d+)?)")


# what a number's neighbours say it is not a figure: a bound (p ≤ 7) or a model's size (70B)
BOUND = re.compile(r"(?<!-)[≤<>≥]\s*\d[\d,.]*|\d+B\b")


def numbers(text: str) -> list[str]:
    return [m.group(1).replace(",", "") for m in NUMBER.finditer(BOUND.sub(" ", text))]


def rows() -> list[tuple[int, str, list[tuple[str, list[str]]]]]:
    """(line, servesim cell, [(experiment, args)]) of each table row: the commands in its command cell ("same":
    the row above's)."""
    out, last = [], None
    for i, line in enumerate(PAPERS.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 4 or set(cells[0]) <= set("- ") or cells[0] == "paper":
            continue
        cmds = [(m.group(1), m.group(2).split()) for m in COMMAND.finditer(cells[-1])]
        if not cmds and cells[-1] == "same":
            cmds = last
        assert cmds, f"docs/papers.md:{i}: a row without `python experiments/NAME.py` in its command cell"
        last = cmds
        out.append((i, cells[-2], cmds))
    return out


def found(doc: str, printed: set[float]) -> bool:
    """`doc` (as written) is a printed number, or one rounded to the decimals the doc gives."""
    places = len(doc.split(".")[1]) if "." in doc else 0
    value = float(doc)
    return any(round(p, places) == value for p in printed)


ROWS = rows()


def test_papers_has_rows():
    assert len(ROWS) >= 20  # every reproduced system has its row


@pytest.mark.parametrize("line,cell,commands", ROWS, ids=[f"{r[2][0][0]}:{r[0]}" for r in ROWS])
def test_row_figures_are_printed(line, cell, commands):
    printed = set()
    for name, args in commands:
        path, cmd = recording(name, args), command(name, args)
        assert path.is_file(), f"docs/papers.md:{line}: `{cmd}` is not recorded: run python experiments/record.py " \
                               f"{' '.join([name, *args])}"  # fmt: skip
        text = path.read_text()
        assert text.startswith(f"# command: {cmd}\n"), f"docs/figures/{path.name} did not record `{cmd}`"
        printed |= {abs(float(x)) for x in numbers(text)}
    missing = [n for n in numbers(cell) if not found(n, printed)]
    assert not missing, (f"docs/papers.md:{line}: {missing} are not in what "
                         f"{', '.join(command(*c) for c in commands)} printed (docs/figures/)")  # fmt: skip

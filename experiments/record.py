"""Record what an experiment prints, so docs/papers.md can be checked against it.

    python experiments/record.py NAME [ARGS...]      # e.g. record.py continuum --programs 200

runs `experiments/NAME.py ARGS` and writes its output to docs/figures/NAME.txt (NAME@ARGS.txt where ARGS
are given, e.g. autoscaling@--hours_24.txt), under a header
naming the command, the date, the machine and the commit; then runs it again with its module's
`CHECK` arguments (the small configuration CI reruns) and writes that output to
docs/figures/NAME.check.txt. `tests/test_papers.py` checks that every number in a docs/papers.md
row appears in its command's recorded output, and `tests/test_experiments.py` that the small
configuration still prints what was recorded, so a figure that the code no longer produces fails CI.

    python experiments/record.py NAME --check-only   # rewrite only NAME.check.txt
"""

from __future__ import annotations

import ast
import contextlib
import io
import platform
import re
import runpy
import subprocess
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parent / "docs" / "figures"


def check_args(name: str) -> list[str]:
    """The experiment's `CHECK` argv (a module-level list of strings), read without importing it."""
    tree = ast.parse((HERE / f"{name}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CHECK" for t in node.targets):
            return [str(x) for x in ast.literal_eval(node.value)]
    raise SystemExit(f"experiments/{name}.py has no CHECK = [...] (the small argv CI reruns): add one")


def output(name: str, args: list[str]) -> str:
    """What `experiments/NAME.py ARGS` prints to stdout, run in this process."""
    argv, buf = sys.argv, io.StringIO()
    sys.argv = [f"{name}.py", *args]
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return buf.getvalue()


def recording(name: str, args: list[str]) -> Path:
    """Where the output of `experiments/NAME.py ARGS` is recorded."""
    slug = re.sub(r"[^\w.,=+-]+", "_", " ".join(args))
    return FIGURES / (f"{name}@{slug}.txt" if args else f"{name}.txt")


def command(name: str, args: list[str]) -> str:
    return " ".join(["python", f"experiments/{name}.py", *args])


def header(name: str, args: list[str]) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=HERE, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return (f"# command: {command(name, args)}\n# date: {date.today()}\n"
            f"# machine: {platform.node()} ({platform.machine()}, {platform.python_version()})\n"
            f"# commit: {commit} (and the working tree's changes)\n")  # fmt: skip


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit("usage: python experiments/record.py NAME [ARGS...] | NAME --check-only")
    name, args = sys.argv[1], sys.argv[2:]
    if not (HERE / f"{name}.py").is_file():
        raise SystemExit(f"no experiment experiments/{name}.py")
    FIGURES.mkdir(parents=True, exist_ok=True)
    small = check_args(name)
    if args != ["--check-only"]:
        path = recording(name, args)
        path.write_text(header(name, args) + output(name, args))
        print(f"wrote docs/figures/{path.name}", file=sys.stderr)
    (FIGURES / f"{name}.check.txt").write_text(output(name, small))
    print(f"wrote docs/figures/{name}.check.txt", file=sys.stderr)


if __name__ == "__main__":
    main()

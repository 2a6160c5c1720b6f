"""Start-up: wall time of `servesim run --num-requests 10` (issue 13's target 2: at most 0.5 s).

Each checkout given runs the command in a fresh interpreter with its `src/` first on the path, in
turn, `--rounds` times `--repeat` runs each; the best of each checkout's runs in a round is
printed, so a busy minute hits every checkout alike. Bytecode is compiled by a first untimed run.

    python benchmarks/bench_startup.py [CHECKOUT ...] [--repeat 6] [--rounds 3]
    git worktree add /tmp/before <commit>; python benchmarks/bench_startup.py /tmp/before .
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

RUN = "import sys; sys.argv = ['servesim', 'run', '--num-requests', '10']; from servesim.__main__ import main; main()"


def wall(src: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(src))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkouts", nargs="*", type=Path, default=[Path(".")])
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    srcs = [c.resolve() / "src" for c in args.checkouts]
    for src in srcs:
        wall(src)  # compile the bytecode
    print(f"python {sys.version.split()[0]}; interpreter alone: "
          f"{min(_bare() for _ in range(args.repeat)):.3f} s")  # fmt: skip
    for r in range(1, args.rounds + 1):
        best = [min(wall(src) for _ in range(args.repeat)) for src in srcs]
        print(f"round {r}: " + ", ".join(f"{c}: {b:.3f} s" for c, b in zip(args.checkouts, best, strict=True)))


def _bare() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()

"""Chrome trace (Perfetto, chrome://tracing) of every replica's engine iterations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def chrome_trace(result, path: str | Path) -> Path:
    """One slice per iteration, one track per replica (per pipeline stream of one); args give its requests and
    tokens."""
    events = []
    for engine, (steps, ends) in enumerate(zip(result.replica_steps, result.iter_ends, strict=True)):
        name = result.deployment.engine_label(engine)
        events.append({"name": "process_name", "ph": "M", "pid": engine, "args": {"name": name}})
        first = 0
        for start, iters, seqs, tokens in zip(
            steps["start"], steps["iters"], steps["seqs"], steps["tokens"], strict=True
        ):
            e = ends[first : first + int(iters)]
            s = np.r_[start, e[:-1]]
            name = "mixed" if tokens > seqs else "decode"
            for a, b in zip(s, e, strict=True):
                events.append(
                    {
                        "name": name,
                        "ph": "X",
                        "pid": engine,
                        "tid": 0,
                        "ts": round(a * 1e6, 3),
                        "dur": round((b - a) * 1e6, 3),
                        "args": {"requests": int(seqs), "tokens": int(tokens)},
                    }
                )
            first += int(iters)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return p


def pipeline_trace(result, path: str | Path) -> Path:
    """The pipeline step as a Chrome trace: one track per device, one slice per F/B/W pass."""
    events = []
    for d, slices in enumerate(result.timeline.slices):
        events.append({"name": "process_name", "ph": "M", "pid": d, "args": {"name": f"device {d}"}})
        for op, start, end in slices:
            events.append({"name": f"{op.kind}{op.mb}", "cat": op.kind, "ph": "X", "pid": d, "tid": 0,
                           "ts": round(start * 1e6, 3), "dur": round((end - start) * 1e6, 3),
                           "args": {"micro_batch": op.mb, "virtual_stage": op.stage}})  # fmt: skip
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return p

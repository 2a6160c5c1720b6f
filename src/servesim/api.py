"""`simulate(scenario) -> Result`: the Python entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from servesim.config import Scenario
from servesim.errors import ServesimError
from servesim.partition import default_workers, simulate_partitioned
from servesim.result import Result
from servesim.run import run_share


def simulate(scenario: Scenario | None = None, workers: int | None = None, ray_address: str | None = None,
             stream: bool = False, records_dir: str | Path | None = None,
             progress: Callable[[int], None] | None = None) -> Result:  # fmt: skip
    """Simulate the scenario's deployment (co-located or disaggregated) serving its workload to completion.

    A fleet in `partitions` groups runs its groups on `workers` local processes (default: one per
    core) or on the Ray cluster at `ray_address` (see `partition.py`). A `stream`ed run keeps no
    requests in memory (`stream.py`): its summary is gathered as it goes, its per-request records
    are written to Parquet in `records_dir` if given. `progress`, if given, is called with the number of
    requests taken into the run since its last call (an unpartitioned run; a partitioned one does not call it)."""
    sc = scenario or Scenario()
    if workers is not None and workers < 1:
        raise ServesimError(f"workers must be at least 1, not {workers}")
    if records_dir is not None and not stream:
        raise ServesimError("records_dir is where a streamed run writes its records; pass stream=True too")
    out = Path(records_dir) if records_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if sc.partitions > 1:
        return simulate_partitioned(sc, workers or default_workers(sc), ray_address, stream, out)
    return run_share(sc, stream=stream, records=out / "requests.parquet" if out else None, progress=progress)


def replay(scenario: Scenario, arrival_s, input_len, output_len) -> Result:
    """Serve exactly these requests on the scenario's deployment (its workload replaced): arrivals in seconds,
    sorted, put on a 1 ms grid as a replayed trace, whose times start at the first arrival."""
    import json
    import tempfile

    from servesim.config import WorkloadConfig

    ms = [round(float(t) * 1e3) for t in arrival_s]
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "requests.jsonl"
        trace.write_text("".join(json.dumps({"timestamp": t, "input_length": int(i), "output_length": int(o)}) + "\n"
                                 for t, i, o in zip(ms, input_len, output_len, strict=True)))  # fmt: skip
        wl = WorkloadConfig(trace=trace, arrival="trace", num_requests=len(ms))
        return simulate(scenario.model_copy(update={"workload": wl}))


__all__ = ["Result", "replay", "simulate"]

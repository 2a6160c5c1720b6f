"""Write a scenario as a TOML file that `servesim run --config` reads back."""

from __future__ import annotations

import json
from pathlib import Path


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else ("inf" if v > 0 else "nan")
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v))


def to_toml(data: dict, prefix: str = "") -> str:
    scalars = [f"{k} = {_value(v)}" for k, v in data.items() if v is not None and not isinstance(v, dict)]
    tables = [f"\n[{prefix}{k}]\n" + to_toml(v, f"{prefix}{k}.") for k, v in data.items() if isinstance(v, dict) and v]
    return "\n".join(scalars) + ("\n" if scalars else "") + "".join(tables)


def write_scenario(scenario, path: str | Path, header: str = "") -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    body = to_toml(scenario.model_dump(mode="json", exclude_none=True))
    p.write_text("".join(f"# {line}\n" for line in header.splitlines()) + body)
    return p


def write_best(base, best: dict, objective: str, targets, path: str | Path) -> Path:
    """The search's best deployment as a scenario at its capacity, ready for `servesim run --config`."""
    from servesim.search.space import Candidate

    scenario = Candidate(**best["candidate"]).scenario(base)
    rate = best["capacity"]
    scenario = scenario.model_copy(update={"workload": scenario.workload.model_copy(update={"rate": rate})})
    header = (
        f"best deployment by {objective}: {best['label']}\ncapacity {rate:.2f} req/s within "
        f"{', '.join(str(x) for x in targets)}; written by servesim search"
    )
    return write_scenario(scenario, path, header)

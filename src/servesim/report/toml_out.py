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


def _tables(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def to_toml(data: dict, prefix: str = "") -> str:
    """Scalars first, then tables, then arrays of tables ([[pools]]: each element's own sub-tables after it)."""
    scalars = [f"{k} = {_value(v)}" for k, v in data.items()
               if v is not None and not isinstance(v, dict) and not _tables(v)]  # fmt: skip
    tables = [f"\n[{prefix}{k}]\n" + to_toml(v, f"{prefix}{k}.") for k, v in data.items() if isinstance(v, dict) and v]
    arrays = [f"\n[[{prefix}{k}]]\n" + to_toml(x, f"{prefix}{k}.") for k, v in data.items() if _tables(v) for x in v]
    return "\n".join(scalars) + ("\n" if scalars else "") + "".join(tables) + "".join(arrays)


def write_scenario(scenario, path: str | Path, header: str = "") -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = scenario.model_dump(mode="json", exclude_none=True)
    if data.get("pools"):  # each pool names its GPU
        data.pop("gpu", None)
    body = to_toml(data)
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

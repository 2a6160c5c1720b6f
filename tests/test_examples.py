from pathlib import Path

import pytest

from servesim.config import load_scenario
from servesim.search import SearchSpace

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_scenarios_load(path):
    if path.name == "cascade.toml":  # (not a scenario: servesim cascade's file)
        from servesim.edge.cascade import load_cascade

        assert load_cascade(path).escalate_above == 512
        return
    sections = {"search": {}}
    scenario = load_scenario(path, sections)
    assert scenario.model
    if sections["search"]:
        assert SearchSpace.model_validate(sections["search"]).gpus


def test_there_are_examples():
    assert {"chat.toml", "disaggregated.toml", "search.toml"} <= {p.name for p in EXAMPLES}

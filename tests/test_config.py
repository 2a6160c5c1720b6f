import pytest
from pydantic import ValidationError

from servesim import EngineConfig, Scenario, ServesimError, simulate
from servesim.config import load_scenario


def test_scenario_file(fixtures):
    sc = load_scenario(fixtures / "scenario.toml")
    assert sc.model == "qwen2.5-7b" and sc.gpu == "h200"
    assert sc.engine.max_num_seqs == 64
    assert sc.workload.trace == fixtures / "azure_small.csv"  # relative to the file
    assert sc.slo.ttft_ms == 200
    s = simulate(sc).summary()
    assert s["completed"] == 40 and "request_goodput" in s


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[engine]\nmax_num_seqs = 0\n", "engine.max_num_seqs"),
        ("[engine]\nmax_num_sequences = 8\n", "engine.max_num_sequences: Extra inputs"),
        ("[slo]\nttft = 500\n", "'ttft' has no unit; write ttft_ms = 500"),
        ("[workload]\narrival = 'trace'\n", "needs a trace file"),
        ("model = \n", "not valid TOML"),
    ],
)
def test_bad_scenarios(tmp_path, text, message):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ServesimError, match=message):
        load_scenario(p)


def test_engine_validation():
    with pytest.raises(ValidationError, match="must be >= max_num_seqs"):
        EngineConfig(max_num_seqs=512, max_num_batched_tokens=256)


def test_model_must_fit():
    with pytest.raises(ServesimError, match="llama-3.1-70b does not fit on h100-sxm at TP 1"):
        simulate(Scenario(model="llama-3.1-70b"))
    with pytest.raises(ServesimError, match="fewer than max_model_len"):
        simulate(Scenario(model="llama-3.1-70b", gpu="h200", engine=EngineConfig(tp=2, gpu_memory_utilization=0.55)))


def test_tensor_parallel_fits_big_models():
    s = simulate(Scenario(model="llama-3.1-70b", engine=EngineConfig(tp=4), workload={"num_requests": 50})).summary()
    assert s["completed"] == 50
    assert s["memory"]["weights_gib_per_gpu"] == pytest.approx(70.55e9 * 2 / 4 / 2**30, rel=0.01)

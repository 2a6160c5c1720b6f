import numpy as np
import pytest

from servesim.config import WorkloadConfig
from servesim.errors import ServesimError
from servesim.workload import generate, read_trace
from servesim.workload.traces import forget_traces
from tests.conftest import shared_trace


def test_read_azure_fixture(fixtures):
    t = read_trace(fixtures / "azure_small.csv")
    assert len(t) == 5 and t.hash_ids is None
    assert list(t.input_lens) == [374, 396, 879, 91, 1950]
    assert t.timestamps[0] == 0 and t.timestamps[1] == pytest.approx(4.314579)


def test_read_mooncake_fixture(fixtures):
    t = read_trace(fixtures / "mooncake_small.jsonl")
    assert list(t.timestamps) == [0, 0.5, 1.0, 1.5]
    assert t.hash_ids[1] == (0, 1, 3)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,10\n", "line 2: expected 3"),
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,10,5\n", "line 2: bad timestamp"),
        (
            "a.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,-4,5\n",
            "line 2: ContextTokens must be at least 1",
        ),
        ("a.csv", "time,in,out\n", "line 1: expected header"),
        ("a.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{oops\n', "line 2: not valid JSON"),
        ("a.jsonl", '{"timestamp": 0, "input_length": 5}\n', "line 1: missing field 'output_length'"),
        ("a.jsonl", '{"timestamp": 0, "input_length": "x", "output_length": 1}\n', "line 1: input_length 'x'"),
        (
            "a.jsonl",
            '{"timestamp": 0, "input_length": 1500, "output_length": 1, "hash_ids": [4, 9, 4]}\n',
            "line 1: hash_ids repeats an id",
        ),
        ("a.txt", "1,2,3\n", "cannot tell the format"),
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n", "holds no requests"),
    ],
)
def test_malformed_traces(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ServesimError, match=message):
        read_trace(p)


def test_trace_workload_modes(fixtures):
    path = fixtures / "mooncake_small.jsonl"
    replay = generate(WorkloadConfig(trace=path, num_requests=None, arrival="trace"))
    assert [r.arrival for r in replay] == [0, 0.5, 1.0, 1.5]
    assert replay[0].hash_ids == (0, 1, 2)
    fast = generate(WorkloadConfig(trace=path, num_requests=4, arrival="trace", time_scale=2.0))
    assert [r.arrival for r in fast] == [0, 0.25, 0.5, 0.75]
    synthetic = generate(WorkloadConfig(trace=path, num_requests=8, rate=100.0))
    assert [r.prompt_len for r in synthetic] == [1100, 1200, 600, 1536] * 2
    sampled = generate(WorkloadConfig(trace=path, num_requests=50, trace_sample="random"))
    assert {r.prompt_len for r in sampled} <= {1100, 1200, 600, 1536}


def test_real_azure_conversation_trace():
    t = read_trace(shared_trace("AzureLLMInferenceTrace_conv.csv"))
    assert len(t) > 10000
    assert np.mean(t.input_lens) == pytest.approx(1155, rel=0.01)
    assert np.all(np.diff(t.timestamps) >= 0)


def test_real_mooncake_trace_hash_blocks():
    t = read_trace(shared_trace("mooncake_conversation_trace.jsonl"))
    assert len(t) > 10000
    # one hash id per 512-token block of the prompt
    assert all(len(h) == -(-n // 512) for h, n in zip(t.hash_ids[:500], t.input_lens[:500], strict=True))


def test_a_trace_read_again_is_the_one_kept(tmp_path, fixtures):
    p = tmp_path / "t.jsonl"
    p.write_text((fixtures / "mooncake_small.jsonl").read_text())
    first = read_trace(p)
    assert read_trace(p) is first
    assert not first.input_lens.flags.writeable and isinstance(first.hash_ids[0], tuple)  # shared: read-only
    p.write_text(p.read_text().replace('"output_length": ', '"output_length": 1'))  # new content: read anew
    changed = read_trace(p)
    assert changed is not first and list(changed.output_lens) != list(first.output_lens)
    forget_traces()
    assert read_trace(p) is not changed


def test_a_large_trace_is_not_kept(tmp_path, fixtures, monkeypatch):
    from servesim.workload import traces

    p = tmp_path / "t.jsonl"
    p.write_text((fixtures / "mooncake_small.jsonl").read_text())
    monkeypatch.setattr(traces, "_KEEP_BYTES", p.stat().st_size - 1)
    assert read_trace(p) is not read_trace(p)

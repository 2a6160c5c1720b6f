import pytest

from servesim.config import Duration, LengthDist, ProgramConfig, WorkloadConfig
from servesim.workload import generate
from servesim.workload.programs import sample_durations


def programs(shape="chain", fanout=1, n=50, unit=16, **kw) -> list:
    pc = ProgramConfig(shape=shape, fanout=fanout, calls=LengthDist(dist="uniform", min=1, max=6), **kw)
    return generate(WorkloadConfig(num_requests=n, rate=5.0, programs=pc, seed=3), unit=unit)


def test_chain_calls_extend_the_context_and_share_its_hash_units():
    calls = programs()
    assert [r.id for r in calls] == list(range(len(calls)))
    progs = {}
    for r in calls:
        progs.setdefault(r.program.id, []).append(r)
    assert sorted(progs) == list(range(50))
    assert len({len(c) for c in progs.values()}) > 1  # call counts vary
    for prog_calls in progs.values():
        first = prog_calls[0]
        assert first.parents == 0 and first.delay == 0
        for a, b in zip(prog_calls, prog_calls[1:], strict=False):
            assert a.children == (b,) and b.parents == 1 and b.delay >= 0
            assert b.prompt_len > a.prompt_len + a.output_len  # the context plus a new message
            # b names a's whole cached context (its prompt and answer but the newest token) as a does
            cached = (a.prompt_len + a.output_len - 1) // 16
            k = a.hash_ends.index(cached) + 1
            assert b.hash_ids[:k] == a.hash_ids[:k] and b.hash_ends[:k] == a.hash_ends[:k]
            assert len(a.hash_ids) <= 2 * len(prog_calls)  # segments, not a unit per block
            assert b.hash_ends[-1] == (b.prompt_len + b.output_len) // 16
        assert prog_calls[-1].children == ()
    roots = [r for r in calls if not r.parents]
    assert [r.arrival for r in roots] == sorted(r.arrival for r in roots)
    # different programs never share a unit
    units = [set(p[-1].hash_ids) for p in progs.values()]
    assert sum(len(u) for u in units) == len(set().union(*units))


def test_dag_stages_fan_out_and_wait_for_the_whole_stage():
    calls = programs("dag", fanout=3)
    prog = calls[0].program
    root, *rest = prog.calls
    assert len(rest) % 3 == 0
    if rest:
        stage = rest[:3]
        assert root.children == tuple(stage)
        assert all(c.parents == 1 for c in stage)
        cached = root.hash_ends.index((root.prompt_len + root.output_len - 1) // 16) + 1
        for c in stage:  # all name the root's cached context as it did, and differ after it
            assert c.hash_ids[:cached] == root.hash_ids[:cached] and c.hash_ends[:cached] == root.hash_ends[:cached]
        tails = [set(c.hash_ids[cached:]) for c in stage]
        assert not (tails[0] & tails[1]) and not (tails[1] & tails[2]) and not (tails[0] & tails[2])
        if len(rest) > 3:
            assert all(c.parents == 3 for c in rest[3:6])
            assert stage[0].children == tuple(rest[3:6])


def test_programs_are_deterministic_and_dealt_whole():
    a, b = programs(), programs()
    assert [(r.id, r.arrival, r.prompt_len, r.output_len, r.delay) for r in a] == \
        [(r.id, r.arrival, r.prompt_len, r.output_len, r.delay) for r in b]
    pc = ProgramConfig(calls=LengthDist(dist="uniform", min=1, max=6))
    wl = WorkloadConfig(num_requests=50, rate=5.0, programs=pc, seed=3)
    share = generate(wl, (1, 3), unit=16)
    assert {r.program.id % 3 for r in share} == {1}
    assert sorted(r.id for r in share) == sorted(r.id for r in a if r.program.id % 3 == 1)


@pytest.mark.parametrize("dist", ["fixed", "exponential", "uniform", "lognormal"])
def test_durations_have_their_mean_and_bounds(dist):
    import numpy as np

    d = Duration(dist=dist, mean_s=2.0, min_s=0.0, max_s=4.0 if dist == "uniform" else 1e9)
    x = sample_durations(d, 20000, np.random.default_rng(0))
    assert x.min() >= 0 and abs(x.mean() - 2.0) < 0.1


def test_programs_refuse_a_trace_and_bad_durations():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="programs are generated"):
        WorkloadConfig(trace="x.csv", programs=ProgramConfig())
    with pytest.raises(ValidationError, match="min_s"):
        Duration(min_s=5, max_s=1)


def test_a_sessions_trace_replays_as_chains(fixtures):
    from servesim import Scenario, simulate

    path = fixtures / "sessions_small.jsonl"
    wl = WorkloadConfig(trace=path, arrival="trace", num_requests=None)
    assert wl.sessions and wl.grouped and wl.unit_tokens(16) == 16
    calls = generate(wl, unit=16)
    assert [len(r.program.calls) for r in calls if not r.parents] == [3, 2, 1]  # by first turn's time
    a0, a1, a2 = calls[0].program.calls
    assert (a1.delay, a2.delay) == (2.5, 1.0) and a0.children == (a1,)
    assert a1.hash_ids[:2] == a0.hash_ids[:2] and a0.hash_ends == [900 // 16, (900 + 120 - 1) // 16]
    res = simulate(Scenario(workload=wl))
    a0, a1, a2 = (res.raw_requests[i] for i in range(3))
    assert a1.arrival == 9.0  # its recorded time: later than the turn before's finish plus 2.5 s
    assert a2.record.arrival == pytest.approx(a1.record.finish + 1.0)
    assert a1.record.cached_tokens >= (900 + 120 - 1) // 16 * 16 - 16
    assert res.summary()["programs"]["completed"] == 3


def test_bad_sessions_traces_say_which_line(tmp_path):
    from servesim.errors import ServesimError
    from servesim.workload.traces import read_sessions

    bad = tmp_path / "s.jsonl"
    bad.write_text('{"session_id": 1, "turn": 0, "timestamp": 0, "input_length": 5, "output_length": 2}\n'
                   '{"session_id": 1, "turn": 1, "input_length": 5}\n')  # fmt: skip
    with pytest.raises(ServesimError, match="line 2: missing field 'output_length'"):
        read_sessions(bad)
    bad.write_text('{"session_id": 1, "turn": 0, "input_length": 5, "output_length": 2}\n')
    with pytest.raises(ServesimError, match="line 1: session 1's first turn needs a timestamp"):
        read_sessions(bad)
    bad.write_text('{"session_id": 1, "turn": 0, "timestamp": 0, "input_length": 5, "output_length": 2, '
                   '"delay_s": -1}\n')  # fmt: skip
    with pytest.raises(ServesimError, match="delay_s must be"):
        read_sessions(bad)

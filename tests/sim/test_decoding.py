"""The aggregate KV-growth formulas against a brute-force count over the same requests."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.sim.decoding import DecodingSet
from servesim.sim.request import Request
from servesim.sim.sequence import Sequence


def make_set(computed: list[int], it: int, B: int) -> tuple[DecodingSet, list[Sequence]]:
    d = DecodingSet(B)
    seqs = []
    for i, c in enumerate(computed):
        q = Sequence(Request(i, 0.0, c, 10**6), 0.0, computed=c, generated=1)
        d.add(q, it)
        seqs.append(q)
    return d, seqs


@settings(max_examples=80, deadline=None)
@given(
    computed=st.lists(st.integers(1, 300), min_size=0, max_size=40),
    it0=st.integers(0, 1000),
    B=st.sampled_from([1, 4, 16, 32]),
    offset=st.integers(0, 50),
    count=st.integers(0, 200),
    free=st.integers(0, 300),
)
def test_growth_matches_brute_force(computed, it0, B, offset, count, free):
    d, reqs = make_set(computed, it0, B)
    start = it0 + offset

    def new_blocks(j):  # a decode at iteration j computes token number c_j + 1
        return sum(1 for r in reqs if (r.base + j) % B == 0)

    assert d.blocks_needed_at(start) == new_blocks(start)
    assert d.blocks_needed(start, count) == sum(new_blocks(j) for j in range(start, start + count))
    # blocks held after iteration j-1 equal ceil(computed_j / B); growth accounts for all of it
    held = lambda j: sum(math.ceil((r.base + j) / B) for r in reqs)  # noqa: E731
    assert held(start + count) - held(start) == d.blocks_needed(start, count)
    fit = d.iterations_fitting(start, free)
    if reqs:
        assert d.blocks_needed(start, fit) <= free < d.blocks_needed(start, fit + 1)
    assert d.ctx_sum(start) == sum(r.base + start + 1 for r in reqs)


def test_finish_order_and_removal():
    d, reqs = make_set([10, 20, 30], 5, 16)
    reqs[0].output_len, reqs[1].output_len = 3, 2  # re-add with short outputs
    for r in reqs[:2]:
        d.remove(r)
        d.add(r, 5)
    assert d.next_finish() == 5  # output 2: first token at prefill, one decode at iteration 5
    assert d.pop_finished(4) == []
    assert d.pop_finished(5) == [reqs[1]]
    d.remove(reqs[1])
    d.remove(reqs[0])  # a preempted request leaves a stale heap entry behind
    assert d.next_finish() == reqs[2].finish_it
    assert d.n == 1

"""`servesim search --mix`: size buckets, the integer program, and a verified fleet."""

import numpy as np
import pytest

from servesim import Scenario, ServesimError, WorkloadConfig
from servesim.config import LengthDist
from servesim.search.capacity import parse_targets
from servesim.search.mix import Option, fleet_price, search_mix, size_buckets, solve
from tests.test_cli import invoke


def test_buckets_split_by_size_and_fold_rare_ones_in():
    ins = np.array([100] * 100 + [1000] * 99 + [9000])
    outs = np.array([50] * 200)
    b = size_buckets(ins, outs)
    assert [x.name for x in b] == ["1-512 in, 1-128 out", "513-2048 in, 1-128 out"]  # the 0.5% bucket folded in
    assert [len(x.inputs) for x in b] == [100, 100] and sum(x.share for x in b) == pytest.approx(1.0)


def test_the_program_buys_the_cheapest_capacity_and_mixes_where_it_pays():
    big, small = Option("h100-sxm", 1), Option("l40s", 1)
    price = {big: 3.0, small: 1.0}
    caps = {big: [10.0, 10.0], small: [4.0, 1.0]}  # the small GPU is good at bucket 0 only
    mix = solve([8.0, 9.0], caps, price)
    assert mix == {big: 1, small: 2}  # the big one takes bucket 1 (9/10) and the small ones bucket 0 (8/4)
    assert fleet_price(mix, price) == 5.0 < fleet_price(solve([8.0, 9.0], {big: caps[big]}, price), price)
    assert solve([1.0], {small: [0.0]}, price) is None  # nothing can serve the bucket


def test_a_mix_is_found_verified_and_compared():
    wl = WorkloadConfig(num_requests=400, input=LengthDist(mean=300, max=3000), output=LengthDist(mean=120, max=600))
    out = search_mix(Scenario(workload=wl), [Option("h100-sxm", 1), Option("l40s", 1)], 12.0,
                     parse_targets(["p90_ttft:2000 p90_tpot:80"]), requests=150, verify_requests=400)  # fmt: skip
    assert out["best_single"] is not None and out["mix"]["usd_per_hour"] <= out["best_single"]["usd_per_hour"]
    assert out["mix"]["summary"]["p90_ttft_ms"] <= 2000 and out["mix"]["summary"]["p90_tpot_ms"] <= 80
    assert sum(b["share"] for b in out["buckets"]) == pytest.approx(1.0)
    assert all(len(c) == len(out["buckets"]) for c in out["capacity"].values())
    with pytest.raises(ServesimError, match="no fleet of these GPUs"):
        search_mix(Scenario(workload=wl), [Option("l40s", 1)], 500.0, parse_targets(["p90_ttft:50"]),
                   requests=100, verify_requests=200)  # fmt: skip


@pytest.mark.parametrize("args, message", [
    (["--mix", "--gpus", "h100-sxm"], "--mix needs --rate and --gpus"),
    (["--rate", "5"], "--rate needs --mix"),
    (["--mix", "--gpus", "h100-sxm", "--rate", "5", "--pp", "2"], "--mix does not take --pp"),
    (["--mix", "--gpus", "h100-sxm", "--rate", "-1", "--slo", "p90_ttft:100"], "positive number"),
])  # fmt: skip
def test_mix_flags_are_checked(args, message):
    res = invoke("search", *args)
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output


def test_power_caps_are_a_search_dimension():
    from servesim.search.space import SearchSpace, expand, space_from

    space = space_from({}, power_caps="450,550")
    cands = expand(space)
    assert [c.power_cap for c in cands] == [None, 450.0, 550.0]
    assert cands[1].label().endswith("cap=450W") and cands[1].scenario(Scenario()).power.cap_w == 450.0
    assert cands[1].base.power_cap == 450.0  # the one-replica seed keeps the cap
    assert expand(SearchSpace())[0].power_cap is None
    with pytest.raises(ServesimError, match="--power-caps takes a comma list of numbers"):
        space_from({}, power_caps="450,x")
    with pytest.raises(ServesimError, match="power_caps"):
        space_from({}, power_caps="-5")

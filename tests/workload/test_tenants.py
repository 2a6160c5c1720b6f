import pytest
from pydantic import ValidationError

from servesim.config import LengthDist, TenantConfig, WorkloadConfig
from servesim.workload import generate


def tenants(*extra) -> WorkloadConfig:
    ts = [TenantConfig(name="a", rate=2.0, priority=1), TenantConfig(name="b", rate=6.0, start_s=5.0,
                                                                    output=LengthDist(dist="fixed", mean=7))]
    return WorkloadConfig(num_requests=400, tenants=ts + list(extra), seed=4)


def test_tenant_streams_are_merged_with_their_shares_starts_and_priorities():
    reqs = generate(tenants())
    assert [r.id for r in reqs] == list(range(400))
    assert [r.arrival for r in reqs] == sorted(r.arrival for r in reqs)
    a, b = [r for r in reqs if r.tenant == 0], [r for r in reqs if r.tenant == 1]
    assert (len(a), len(b)) == (100, 300)  # shared by rate
    assert all(r.priority == 1 for r in a) and all(r.priority == 0 for r in b)
    assert min(r.arrival for r in b) >= 5.0 and all(r.output_len == 7 for r in b)
    rate_b = (len(b) - 1) / (b[-1].arrival - b[0].arrival)
    assert rate_b == pytest.approx(6.0, rel=0.15)


def test_a_tenant_added_leaves_the_others_streams_alone():
    fixed = [TenantConfig(name="a", rate=2.0, num_requests=80), TenantConfig(name="b", rate=6.0, num_requests=90)]
    before = [(r.arrival, r.prompt_len, r.output_len) for r in generate(WorkloadConfig(tenants=fixed)) if r.tenant < 2]
    more = WorkloadConfig(tenants=fixed + [TenantConfig(name="c", rate=1.0, num_requests=50)])
    after = [(r.arrival, r.prompt_len, r.output_len) for r in generate(more) if r.tenant < 2]
    assert after == before  # each tenant draws from its own seed


def test_tenants_refuse_what_they_cannot_mean():
    with pytest.raises(ValidationError, match="names must differ"):
        WorkloadConfig(tenants=[TenantConfig(name="a", rate=1), TenantConfig(name="a", rate=2)])
    with pytest.raises(ValidationError, match="streams of their own"):
        WorkloadConfig(trace="x.csv", tenants=[TenantConfig(name="a", rate=1)])
    with pytest.raises(ValidationError, match="at least one"):
        WorkloadConfig(tenants=[])

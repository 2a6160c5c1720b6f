import numpy as np

from servesim import Scenario, WorkloadConfig, simulate
from servesim.records import Records


def test_records_read_like_a_table():
    t = Records(a=np.array([1, 2, 3]), b=np.array([0.5, np.nan, 2.0]))
    assert t.rows == 3 and t.a.tolist() == [1, 2, 3]
    sel = t.select(t.a >= 2)
    assert sel.rows == 2 and sel.b[1] == 2.0
    assert Records().rows == 0


def test_result_records_match_the_dataframe():
    r = simulate(Scenario(workload=WorkloadConfig(num_requests=50, rate=5.0)))
    df = r.requests
    assert list(df.columns) == list(r.records)
    for col in ("ttft_s", "tpot_s", "e2el_s", "energy_j", "itl_mean_s"):
        np.testing.assert_array_equal(df[col].to_numpy(), r.records[col])

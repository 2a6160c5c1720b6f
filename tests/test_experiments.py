"""Paper reproductions under experiments/ run small (each module's `CHECK` argv), show their paper's direction,
and print what experiments/record.py recorded for that small run in docs/figures/NAME.check.txt: a change that
moves an experiment's figures fails here until the experiment is recorded again (and docs/papers.md, which
tests/test_papers.py checks against the recording, follows)."""

import re
import runpy
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
FIGURES = Path(__file__).parents[1] / "docs" / "figures"
sys.path.insert(0, str(EXPERIMENTS))
from record import check_args  # noqa: E402


def _output(monkeypatch, capsys, name: str) -> str:
    """What experiments/NAME.py prints with its CHECK argv, which must be what was recorded."""
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *check_args(name)])
    runpy.run_path(str(EXPERIMENTS / f"{name}.py"), run_name="__main__")
    out = capsys.readouterr().out
    recorded = FIGURES / f"{name}.check.txt"
    assert recorded.is_file(), f"docs/figures/{recorded.name} is missing: run python experiments/record.py {name}"
    if "trace not found" not in out:  # (runs that read the shared traces are compared where the traces are)
        assert out == recorded.read_text(), (
            f"experiments/{name}.py no longer prints what docs/figures/{recorded.name} holds: record it again "
            f"(python experiments/record.py {name} ARGS, with the ARGS docs/papers.md cites) and update docs/papers.md"
        )
    return out


def test_every_experiment_is_checked():
    names = {p.stem for p in EXPERIMENTS.glob("*.py")} - {"record"}
    tested = set(re.findall(r'_(?:run|output)\(monkeypatch, capsys, "(\w+)"\)', Path(__file__).read_text()))
    assert names <= tested, f"experiments without a test here: {sorted(names - tested)}"


def test_pipeline_schedules_experiment(monkeypatch, capsys):
    out = _output(monkeypatch, capsys, "pipeline_schedules")
    study, textbook = out.split("(2)")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in study.splitlines() if " | " in line}
    gain = lambda name: float(rows[name][5].rstrip("%"))  # noqa: E731  ("vs 1F1B" column)
    assert 0 < gain("zb-h1") < gain("zb-h2")  # Zero Bubble beats 1F1B, more with more memory
    assert rows["zb-h2"][1] == "1"
    simulated = {line.split(" | ")[0]: line.split(" | ")[1:] for line in textbook.splitlines() if " | " in line}
    assert all(a == b for a, b in list(simulated.values())[1:])  # simulated bubble == textbook formula


def _table(out: str) -> dict[str, list[str]]:
    return {line.split(" | ")[0]: line.split(" | ") for line in out.splitlines() if " | " in line}


def _run(monkeypatch, capsys, name: str) -> dict[str, list[str]]:
    return _table(_output(monkeypatch, capsys, name))


def test_learning_to_rank_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "learning_to_rank")
    e2el = {k: float(v[2]) for k, v in rows.items() if k != "policy"}
    assert e2el["sjf, oracle"] < e2el["sjf, tau 0.6"] < e2el["fcfs (vllm)"]  # a better ranker, lower latency
    assert abs(float(rows["sjf, tau 0.6"][1]) - 0.6) < 0.05  # the ranker has the quality asked for


def test_length_perception_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "length_perception")
    rps = {k: float(v[1]) for k, v in rows.items() if k != "policy"}
    assert rps["static, arrival order"] < rps["static, grouped (buckets, 80%)"] < rps["static, grouped (oracle)"]


def test_continuum_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "continuum")
    jct = {k.split(" ", 1)[1]: float(v[1]) for k, v in rows.items() if k[0].isdigit()}
    assert jct["continuum"] < min(jct["ttl only"], jct["program fcfs only"]) <= jct["vllm"]  # the halves help together
    assert jct["continuum, oracle TTL"] < jct["continuum"]  # knowing each tool call's duration beforehand helps more
    hit = {k.split(" ", 1)[1]: float(v[5].rstrip("%")) for k, v in rows.items() if k[0].isdigit()}
    assert hit["vllm"] < hit["continuum"] < hit["continuum, oracle TTL"]  # pinned contexts are found again
    assert jct["continuum, cpu offload by 256 tokens"] < jct["continuum, cpu offload by block"]  # fewer copies


def test_autellix_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "autellix")
    jct = {k.split(" ", 1)[1]: (float(v[1]), float(v[5])) for k, v in rows.items() if k[0].isdigit()}
    assert jct["autellix"][0] < jct["vllm"][0]  # past the KV cache's knee, mean completion is lower
    assert jct["autellix"][1] < jct["vllm"][1]  # programs queue less


def test_fastswitch_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "fastswitch")
    ttft = {k: float(v[1]) for k, v in rows.items() if k != "preemption"}
    assert ttft["swap, 64-block groups (fastswitch)"] < ttft["swap, block by block (vllm)"]  # bigger copies, less stall
    copy = {k: float(v[7]) for k, v in rows.items() if k != "preemption"}
    assert copy["swap, 64-block groups (fastswitch)"] < copy["swap, block by block (vllm)"]


def test_vtc_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "vtc")
    share = {k: float(v[2]) for k, v in rows.items() if k != "policy"}
    jain = {k: float(v[3]) for k, v in rows.items() if k != "policy"}
    assert share["vllm"] < 0.4 < share["vtc"]  # FCFS serves by demand, VTC evens it out
    assert jain["vtc"] > jain["vllm"]


def test_kinetics_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "kinetics")
    growth = {k: float(v[3].rstrip("x")) for k, v in rows.items() if "x" in k and k[0].isdigit()}
    share = {k: float(v[4].rstrip("%")) for k, v in rows.items() if "x" in k and k[0].isdigit()}
    assert growth["8 x 8192"] > growth["1 x 8192"] > 1.0  # cost per token grows with length, more with samples
    assert share["8 x 8192"] > share["8 x 1024"] > share["1 x 1024"]  # attention takes over


def test_speculative_decoding_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "speculative_decoding")
    assert float(rows["1"][3]) > 1.5 and float(rows["1"][5]) > 1.2  # helps at batch 1
    assert float(rows["256"][5]) < 1.0 < float(rows["1"][5])  # the draft model hurts at batch 256


def test_quantization_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "quantization")
    tpot = {k: float(v[1]) for k, v in rows.items() if k != "scheme"}
    tput = {k: float(v[2]) for k, v in rows.items() if k != "scheme"}
    assert tpot["W4A16 (awq)"] == min(tpot.values())  # W4A16 for latency
    assert tput["W8A8 (fp8)"] == max(tput.values())  # FP8 for throughput


def test_layered_prefill_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "layered_prefill")
    ttft = {k: float(v[1]) for k, v in rows.items() if k != "policy"}
    assert ttft["layered prefill, 4 groups"] < ttft["chunked prefill (512)"]


def test_semi_pd_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "semi_pd")
    e2el = {k.split(" ", 1)[1]: float(v[1]) for k, v in rows.items() if k[0].isdigit()}
    # the paper's direction holds only where both workers are assumed to run at full speed at once; priced with
    # the contention measured between two green contexts on one H100, semi-PD loses to co-located serving
    assert e2el["semi-PD x2 (no contention, assumed)"] < e2el["co-located x2"] < e2el["semi-PD x2"]
    slow = [float(x.rstrip("x")) for x in rows["16 semi-PD x2"][7].split("/")]
    assert all(1.0 < x <= 2.0 for x in slow)  # each worker slowed, at most twofold (processor sharing)


def test_nanoflow_and_moe_lens_experiments(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "nanoflow")
    assert float(rows["nanoflow, 4 nano-batches"][3]) >= 1.0
    rows = _run(monkeypatch, capsys, "moe_lens")
    for model in ("qwen3-30b-a3b", "deepseek-v2-lite", "llama-3.1-8b"):
        hardware, measured, predicted, simulated = (float(x) for x in rows[model][2:6])
        # real forward passes stay under the bound; servesim's prices of the same formula stay near them
        assert measured < hardware and simulated < hardware and 0.8 < predicted / measured < 1.2


def test_heterogeneous_mix_and_autoscaling_experiments(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "heterogeneous_mix")
    if "conv" in rows and len(rows["conv"]) >= 6:  # (the trace is in the shared folder when it is there)
        mix, single = float(rows["conv"][3]), float(rows["conv"][5])
        assert mix <= single  # a single type is a mix too: the cheapest verified fleet never costs more
    rows = _run(monkeypatch, capsys, "autoscaling")
    static = [float(v[3]) for k, v in rows.items() if k.startswith("static for the peak")]
    scaled = [float(v[3]) for k, v in rows.items() if k.startswith("predictive")]  # (cost column)
    assert static and scaled and max(scaled) < static[0]  # starting at the night's size costs less


def test_sarathi_serve_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "sarathi_serve")
    strict = {k: float(v[1]) for k, v in rows.items() if k.startswith(("whole", "request", "chunked", "sarathi"))}
    whole, sarathi = strict["whole prompts (orca, vllm v0)"], strict["sarathi-serve, budget 512"]
    assert sarathi > 2 * whole  # stall-free batching serves far more under a strict TBT SLO
    assert strict["request-level batches (fastertransformer)"] < whole  # decode-first batches queue new requests
    tail = {k.split(" ", 1)[1]: float(v[1]) for k, v in rows.items() if k[0].isdigit()}
    assert tail["sarathi-serve, budget 512"] < tail["whole prompts (orca, vllm v0)"] / 2  # P99 TBT at one rate


def test_splitwise_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "splitwise")
    rate, per_usd, per_kw = ({k: float(v[i]) for k, v in rows.items() if k != "design"} for i in (3, 6, 7))
    base, hh, ha = "baseline-H100 x4", "splitwise-HH 2P+2T", "splitwise-HA 2P(H100)+2T(A100)"
    assert rate[hh] > rate[base]  # without prefill stalls the TBT SLO holds to a higher rate
    assert per_usd[ha] > per_usd[base] and per_kw[ha] > per_kw[base]  # cheaper, cooler token machines
    assert per_kw["splitwise-HHcap 2P+2T(350 W)"] > per_kw[hh]  # capped token machines: more per provisioned kW


def test_distserve_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "distserve")
    good, scale = ({k: float(v[i]) for k, v in rows.items() if k != "deployment"} for i in (1, 4))
    assert good["disaggregated 3P1D"] > 1.3 * good["co-located x4 (vllm)"]  # more goodput at equal GPUs
    assert scale["disaggregated 3P1D"] < scale["co-located x4 (vllm)"]  # and a tighter SLO met at one rate


def test_tetriinfer_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "tetriinfer")
    ttft, tpot = ({k: float(v[i]) for k, v in rows.items() if k[0].isdigit()} for i in (1, 4))
    # prefill instances never wait for decode memory: TTFT far lower where the KV cache binds (JCT is not: the
    # decode pool has half the KV cache, docs/papers.md)
    assert ttft["0.35 tetriinfer 2P2D"] < ttft["0.35 vllm x4"] / 5
    assert tpot["0.9 tetriinfer 2P2D"] < tpot["0.9 vllm x4"]  # no prefill chunks beside decodes: a lower TPOT tail


def test_llumnix_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "llumnix")
    ttft, preempt = ({k: float(v[i]) for k, v in rows.items() if k != "dispatch and migration"} for i in (3, 1))
    for base in ("round robin", "least kv load"):
        assert ttft[f"{base} + live migration"] < ttft[base] / 5  # tail TTFT lower by about an order of magnitude
        assert preempt[f"{base} + live migration"] < preempt[base] / 2


def test_polca_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "polca")
    over = {k: float(v[5].rstrip("%")) for k, v in rows.items() if k != "replicas"}
    tput = {k: float(v[2]) for k, v in rows.items() if k != "replicas"}
    tpot = {k: float(v[8]) for k, v in rows.items() if k != "replicas"}
    assert over["8"] == 0 and over["11"] < over["11, no controller"] / 4  # the controller keeps the budget
    assert tput["11"] > 1.25 * tput["8"] and tpot["11"] < 1.5 * tpot["8"]  # 37.5% more servers, modest loss


def test_monkeys_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "monkeys")
    ks = [k for k in rows if k.isdigit()]
    cov, usd = ([float(rows[k][i]) for k in ks] for i in (1, 4))
    assert len(ks) >= 3 and cov == sorted(cov) and cov[0] < cov[-1] - 30  # coverage rises with samples
    assert rows["1"][1] == "15.9" and rows["250"][1] == "56.0"  # through the cited ends of the fitted curve
    assert usd == sorted(usd) and usd[-1] < 25 * usd[0]  # 250 samples share the prompt and the batch: far under 250x
    # the 7B's vote reaches the 32B's pass@1 with 8 samples, for less than the 32B's one sample at either load
    for load in {k.rsplit(" ", 3)[0] for k in rows if k.endswith("32B x 1")}:
        small, big = rows[f"{load} 7B x 8"], rows[f"{load} 32B x 1"]
        assert float(small[1]) >= float(big[1]) and float(small[4]) < float(big[4])


def test_sleep_time_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "sleep_time")
    usd = {k: float(v[4]) for k, v in rows.items() if k != "load strategy"}
    p50 = {k: float(v[9]) for k, v in rows.items() if k != "load strategy"}
    # every batch full: the cost per query falls with the queries per context (one: the pre-processing costs extra)
    assert usd["at once sleep-time x1"] > usd["at once from scratch"] > usd["at once sleep-time x5"]
    assert usd["at once sleep-time x5"] > usd["at once sleep-time x10"]
    assert usd["at once from scratch"] / usd["at once sleep-time x10"] > 2  # near the paper's 2.5x
    assert usd["2/s sleep-time x5"] < usd["2/s from scratch"] / 2  # past what answering from scratch serves
    assert p50["0.5/s sleep-time x5"] < p50["0.5/s from scratch"] / 3  # fewer test-time tokens: answers sooner


def test_kinetics_crossover_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "kinetics_crossover")
    pair = {k: v for k, v in rows.items() if "->" in k and not k.startswith("GPU")}
    cost = {k: float(v[5]) for k, v in rows.items() if k.endswith("n=1")}  # $ per 1,000 questions, one sample
    for gpu in ("h100-sxm", "h200"):
        simulated, params_only = (float(x) for x in pair[f"{gpu} qwen2.5-1.5b->qwen2.5-7b"][1].split(" / "))
        assert simulated < params_only  # the small model's long samples cost more than its parameters say
        # the 7B, more accurate with one sample than the 1.5B with any, wins from its first sample's price on
        assert pair[f"{gpu} qwen2.5-1.5b->qwen2.5-7b"][2].startswith(f"${cost[f'{gpu} qwen2.5-7b n=1']:g} on")
    ratio = {gpu: float(pair[f"{gpu} qwen2.5-7b->qwen2.5-32b"][1].split(" / ")[0]) for gpu in ("h100-sxm", "h200")}
    assert ratio["h100-sxm"] > 2 * ratio["h200"]  # the 32B's weights leave an H100 little KV cache
    start = {gpu: float(pair[f"{gpu} qwen2.5-7b->qwen2.5-32b"][2].split()[0].lstrip("$")) for gpu in ratio}
    assert start["h100-sxm"] > start["h200"]  # so the larger model starts to win later there


def test_compute_optimal_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "compute_optimal")
    fewer = {k: float(v[4].rstrip("x")) for k, v in rows.items() if k.startswith("N=")}
    less = {k: float(v[7].rstrip("x")) for k, v in rows.items() if k.startswith("N=")}
    assert 1 < fewer["N=4, 5 bins"] < fewer["N=16, 5 bins"]  # adaptive saves samples, more at higher accuracy
    assert less["N=4, 5 bins"] > 1 and less["N=16, 5 bins"] > 1.3  # and served GPU dollars
    assert rows["N=16, 5 bins"][2].startswith("1/")  # the hardest bin, where votes do not help, keeps one sample
    hard = rows["bin 1 of 5"]
    assert float(hard[-1].rstrip("%")) < float(hard[4].rstrip("%")) + 1  # ... as more samples barely help it


def test_flexgen_offload_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "flexgen_offload")
    fg = {int(k): float(v[1]) for k, v in rows.items() if k.isdigit()}
    assert list(fg.values()) == sorted(fg.values()) and fg[512] > 100 * fg[1]  # larger blocks amortise each load
    assert float(rows["64"][1]) > float(rows["64"][6])  # flexgen above stream at the same block
    assert float(rows["1"][1]) < float(rows["1"][8]) / 10  # small blocks: far slower than TP2 holding the model
    assert float(rows["512"][2]) < float(rows["512"][9])  # at block 512 one offloaded GPU costs less than TP2


def test_llm_in_flash_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "llm_in_flash")
    tpot = {k.split(" (")[0].split(",")[0]: float(v[5]) for k, v in rows.items() if k != "design"}
    speedup = {k: float(v[8].rstrip("x")) for k, v in rows.items() if k != "design"}
    assert tpot["naive"] > 1.8 * tpot["hybrid"]  # half in DRAM: about half the reads
    assert speedup["sparse 0.9, bundled, window reuse 0.76"] > 4  # at least the paper's CPU speed-up
    assert speedup["sparse 0.9, bundled (24 KiB)"] > 2 * speedup["sparse 0.9, row reads (8 KiB)"]  # bundles help


def test_on_device_experiment(monkeypatch, capsys):
    rows = _run(monkeypatch, capsys, "on_device")
    phone, orin = rows["snapdragon-8-gen3 llama-3.2-1b"], rows["jetson-agx-orin-64gb llama-3.2-1b"]
    assert float(phone[2]) > float(orin[2])  # decode follows memory bandwidth: 76.8 against 204.8 GB/s
    assert all(float(r[2]) >= float(r[3]) for k, r in rows.items() if k != "device model")  # never under the floor
    first, last = (float(x) for x in phone[12].split(" / "))
    assert phone[10] != "never" and last > first  # the phone throttles in a sustained decode

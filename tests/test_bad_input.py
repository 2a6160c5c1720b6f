"""Bad input, family by family: each ends in one line that says what is wrong, never a traceback."""

import json
from pathlib import Path

import pytest

from tests.test_cli import invoke, one_line_error

CATALOG = Path(__file__).parents[1] / "src" / "servesim" / "models" / "catalog"
LLAMA_H200 = Path(__file__).parents[1] / "docs" / "validation" / "measured_h200_llama-3.1-8b.csv"
N = ["--num-requests", "20"]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    Path("bin.csv").write_bytes(bytes(range(256)) * 4)
    Path("bin.toml").write_bytes(b"\xff\xfe\x00model = 1")
    Path("list.json").write_text("[1, 2]")
    Path("gpu_scalar.toml").write_text("mygpu = 5\n")
    Path("gpu_list.toml").write_text("mygpu = [1, 2]\n")
    Path("gpu_name.toml").write_text("[mygpu]\nname = 'x'\nbf16_tflops = 100\nmemory_gib = 80\nmem_bw_gbs = 2000\n"
                                     "link_gbs = 900\ntdp_w = 700\n")  # fmt: skip
    llama = json.loads((CATALOG / "llama-3.1-8b.json").read_text())
    mixtral = json.loads((CATALOG / "mixtral-8x7b.json").read_text())
    configs = {
        "zero_heads": {**llama, "num_attention_heads": 0},
        "str_hidden": {**llama, "hidden_size": "4096"},
        "no_experts": {k: v for k, v in mixtral.items() if k != "num_local_experts"},
    }
    for name, cfg in configs.items():
        Path(f"{name}.json").write_text(json.dumps(cfg))
    Path("list_cfg.json").write_text(json.dumps([llama]))
    Path("inf.jsonl").write_text('{"timestamp": 0, "input_length": 1e999, "output_length": 5}\n')
    Path("zero.jsonl").write_text('{"timestamp": 0, "input_length": 10, "output_length": 0}\n')
    Path("search5.toml").write_text('model = "llama-3.1-8b"\nsearch = 5\n')
    gpu = "[mygpu]\nbf16_tflops = 100\nmem_bw_gbs = 2000\nlink_gbs = 900\ntdp_w = 700\n"
    Path("gpu_inf.toml").write_text(gpu + "memory_gib = inf\n")
    Path("gpu_key.toml").write_text(gpu + "memory_gib = 80\nidle_watts = 5\n")
    head = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    Path("huge.csv").write_text(head + "2023-11-16 18:17:03.9,100,20\n2023-11-16 18:17:04.9,4294967297,20\n")
    Path("epoch.csv").write_text(head + "1970-01-01 00:00:01,100,20\n2023-11-16 18:17:04.9,100,20\n")
    Path("nat.csv").write_text(head + "NaT,100,20\n2023-11-16 18:17:04.9,100,20\n")
    Path("bool.jsonl").write_text('{"timestamp": 0, "input_length": true, "output_length": 5}\n')
    Path("stray.jsonl").write_text('{"timestamp": 0, "input_length": 5, "output_length": 5}\n'
                                   '{"timestamp": 1000, "input_length": 5, "output_length": 5}\n'
                                   '{"timestamp": 1e18, "input_length": 5, "output_length": 5}\n')  # fmt: skip
    Path("gz.jsonl").write_bytes(b"\x1f\x8b\x08\x00\xff\xfe binary")
    Path("nan.jsonl").write_text('{"session_id": 1, "turn": 0, "input_length": 5, "output_length": 5, '
                                 '"timestamp": 0, "delay_s": NaN}\n')  # fmt: skip
    turn = '{"session_id": 1, "turn": %d, "input_length": 5, "output_length": 5, "timestamp": 0}\n'
    Path("dup.jsonl").write_text(turn % 0 + turn % 0)
    Path("sessions.jsonl").write_text(turn % 0 + turn % 1)
    Path("afile").write_text("x")
    Path("notsqlite.sqlite").write_text("not a database " * 100)
    return tmp_path


INERT = [  # flags that cannot act in the run they were given to: refused, naming what they need
    (["--time-scale", "2"], "--trace"), (["--trace-sample", "random"], "--trace"), (["--burstiness", "0.5"], "gamma"),
    (["--rate-period-s", "100"], "--rate-shape"), (["--workers", "2"], "--partitions"),
    (["--ray-address", "auto"], "--partitions"), (["--quantization-bits", "8"], "--quantization"),
    (["--kv-transfer", "whole"], "disaggregated"), (["--kv-bandwidth-gbs", "10"], "disaggregated"),
    (["--fanout", "3"], "--programs"), (["--migration"], "more than one replica"),
    (["--expert-skew", "1.5"], "mixture-of-experts"), (["--calls", "3"], "switch on a feature by itself"),
    (["--gap-dist", "uniform"], "name it with --programs"), (["--acceptance-rate", "0.6"], "--speculative-method"),
    (["--format", "csv"], "--output"), (["--swap-space", "8"], "--preemption-mode swap"),
    (["--swap-group-blocks", "16"], "--preemption-mode swap"),
]  # fmt: skip


@pytest.mark.parametrize("flag, needs", INERT, ids=lambda x: x[0] if isinstance(x, list) else None)
def test_a_flag_that_cannot_act_is_refused(flag, needs):
    res = invoke("run", *flag, *N)
    assert res.exit_code != 0 and needs in res.output and "Traceback" not in res.output, res.output


CASES = [
    # empty values are mistakes, invalid names are refused up front, flags that cannot act say so
    (["run", "--router", "", *N], "--router is empty"),
    (["run", "--goodput", "", *N], "--goodput names no target"),
    (["run", "--prefill-gpu", "", "--prefill-replicas", "1", "--decode-replicas", "1", *N], "--prefill-gpu is empty"),
    (["search", "--pd", "", "--slo", "p90_ttft:100"], "--pd '' names nothing"),
    (["search", "--schedulers", "bogus", "--slo", "p90_ttft:100", "--store", "s.sqlite"], "unknown scheduler 'bogus'"),
    (["search", "--top", "0", "--slo", "p90_ttft:100"], "--top must be at least 1"),
    (["search", "--rate-tol", "1e-300", "--slo", "p90_ttft:100"], "--rate-tol must be from 0.0001"),
    (["search", "-c", "search5.toml", "--slo", "p90_ttft:100"], "[search] must be a table of settings"),
    (["pipeline", "--search", "--schedules", "bogus"], "unknown pipeline schedule 'bogus'"),
    (["pipeline", "--pps", "2"], "--pps act only with --search"),
    (["bound", "--num-requests", "50", "--no-simulate"], "--no-simulate turns off"),
    (["pipeline", "--search", "--report", "p.html"], "--search ranks layouts and writes no timeline"),
    # GPU files and policy options: strict fields, finite numbers; counts past what any run needs
    (["run", "--gpu-file", "gpu_inf.toml", "--gpu", "mygpu", *N], "field memory_gib: Input should be a finite number"),
    (["run", "--gpu-file", "gpu_key.toml", "--gpu", "mygpu", *N], "field idle_watts: Extra inputs are not permitted"),
    (["run", "--scheduler", "vtc", "-O", "weights=[0,0]", *N], "weights.0: Input should be greater than 0"),
    (["run", "--scheduler", "vtc", "-O", "w_in=inf", *N], "w_in: Input should be a finite number"),
    (["run", "--scheduler", "vtc", "-O", "weights=[1,2,3]", *N], "3 weights for 0 tenants"),
    (["run", "--num-requests", "99999999999999999999"], "less than or equal to 1000000000"),
    (["run", "--autoscale", "reactive", "--max-replicas", "1000000000000"], "autoscale.max_replicas: Input should"),
    (["run", "--autoscale", "reactive", "--max-replicas", "3", "--warmup-s", "1e300"], "autoscale.warmup_s"),
    (["run", "--autoscale", "reactive", "--max-replicas", "3", "--cold-start-load-gbs", "1e-300"],
     "autoscale.load_gbs"),
    (["run", "--pool", "h100:1000000000000"], "pools.0.replicas: Input should be less than or equal to 100000"),
    (["search", "--mix", "--gpus", "h100", "--rate", "1e12", "--slo", "p90_ttft:100"], "at most 100,000"),
    (["run", "--rate", "1e-300"], "workload.rate: Input should be greater than or equal to 0.000001"),
    (["run", "--expert-skew", "1e300", "--model", "qwen3-30b-a3b"], "less than or equal to 64"),
    (["run", "--input-sigma", "1e300"], "workload.input.sigma: Input should be less than or equal to 10"),
    (["run", "--swap-space", "1e300"], "engine.swap_space: Input should be less than or equal to 65536"),
    (["run", "--kv-bandwidth-gbs", "1e-300", "--prefill-replicas", "1", "--decode-replicas", "1"],
     "greater than or equal to 0.001"),
    (["run", "--replicas", "1000000000000"], "replicas: Input should be less than or equal to 100000"),
    (["step", "--prefill", "1000000000000"], "LEN + CTX at most 10,000,000"),
    (["step", "--decode", "1000000000000x10"], "COUNT at most 1,000,000"),
    # trace rows that would wrap, allocate a year of windows, or read a boolean as a length
    (["run", "--trace", "huge.csv", *N], "huge.csv line 3: ContextTokens 4294967297 is more than 10,000,000"),
    (["run", "--trace", "epoch.csv", *N], "epoch.csv line 2: the timestamps span"),
    (["run", "--trace", "nat.csv", *N], "nat.csv line 2: timestamp missing or not a time"),
    (["run", "--trace", "bool.jsonl", *N], "bool.jsonl line 1: input_length 'True' is not a whole number"),
    (["run", "--trace", "stray.jsonl", *N], "stray.jsonl line 3: the timestamps span"),
    (["run", "--trace", "gz.jsonl", *N], "is not UTF-8 text"),
    (["run", "--trace", "nan.jsonl", "--trace-format", "sessions", *N], "delay_s must be a number of seconds"),
    (["run", "--trace", "dup.jsonl", "--trace-format", "sessions"], "dup.jsonl line 2: session 1 has turn 0 twice"),
    (["run", "--trace", "sessions.jsonl", "--trace-format", "sessions", "--n", "2"], "samples apply to single"),
    # unreadable or non-UTF-8 files, and files of the wrong shape
    (["run", "--trace", "bin.csv"], "not UTF-8 text"),
    (["run", "-c", "bin.toml"], "not UTF-8 text"),
    (["run", "-c", "list.json"], "must hold a table of settings"),
    (["run", "--trace", "d"], "is not a file"),
    # --gpu-file entries that are not GPU tables
    (["run", "--gpu-file", "gpu_scalar.toml", *N], "[mygpu] must be a table of GPU fields"),
    (["step", "--gpu-file", "gpu_list.toml", "--decode", "1x10"], "[mygpu] must be a table of GPU fields"),
    (["gpus", "--gpu-file", "gpu_name.toml"], "has a 'name' field"),
    # Hugging Face config.json that cannot describe a model
    (["run", "--model", "zero_heads.json", *N], "'num_attention_heads' must be a whole number >= 1, not 0"),
    (["step", "--model", "str_hidden.json", "--decode", "1x1"], "'hidden_size' must be a whole number"),
    (["run", "--model", "no_experts.json", *N], "lacks 'num_local_experts'"),
    (["run", "--model", "list_cfg.json", *N], "must hold a table of settings"),
    # output paths
    (["run", *N, "--output", "afile"], "is a file; give a folder"),
    (["run", *N, "--report", "d"], "is a folder; give a file name"),
    (["run", *N, "--trace-out", "d"], "is a folder; give a file name"),
    # numbers
    (["run", "--seed", "-1", *N], "workload.seed"),
    (["run", "--trace", "inf.jsonl"], "line 1: input_length 'inf' is not a whole number"),
    (["run", "--trace", "zero.jsonl"], "line 1: output_length must be at least 1"),
    (["run", "--input-mean", "inf", *N], "workload.input.mean: Input should be a finite number"),
    (["run", "--output-sigma", "inf", *N], "workload.output.sigma: Input should be a finite number"),
    (["search", "--replicas", "0", "--slo", "p90_tpot:50", "--store", "s.sqlite"], "--replicas '0' must be"),
    (["search", "--replicas", "-1", "--slo", "p90_tpot:50", "--store", "s.sqlite"], "positive integers"),
    (["search", "--num-requests", "-5", "--slo", "p90_tpot:50", "--store", "s.sqlite"], "--num-requests"),
    (["search", "--slo", "p90_ttft:-5", "--store", "s.sqlite"], "not a positive number of milliseconds"),
    (["search", "--pd", "0P1D", "--slo", "p90_tpot:50", "--store", "s.sqlite"], "each at least 1"),
    # search stores that are not stores
    (["search", "--store", "d", "--slo", "p90_tpot:50"], "--store d is a folder"),
    (["search", "--store", "notsqlite.sqlite", "--slo", "p90_tpot:50"], "cannot be used as a results store"),
    # settings that cannot be kept, or do not apply to the deployment's shape
    (["run", "--power-budget", "100", *N], "is not above the deployment's idle draw"),
    (["run", "--power-cap", "1", *N], "power cap of 1 W is below"),
    (["run", "--kv-bandwidth-gbs", "0", "--prefill-replicas", "1", "--decode-replicas", "1", *N], "bandwidth_gbs"),
    (["run", "--router", "random", "--prefill-replicas", "1", "--decode-replicas", "1", *N], "set each pool's"),
    (["run", "--replicas", "2", "--prefill-replicas", "1", "--decode-replicas", "1", *N], "set each pool's"),
    (["run", "--model", "mixtral-8x7b", "--gpu", "h200", "--ep", "8", *N], "must divide the GPUs an MoE layer spans"),
    (["run", "-O", "chunk_size=64", "--scheduler", "sarathi", *N], "sarathi chunk_size (64) must be >= max_num_seqs"),
    (["validate", "--model", "qwen2.5-14b", "--gpu", "h200", "--measured", str(LLAMA_H200)],
     "was measured with model llama-3.1-8b, not qwen2.5-14b"),
]


@pytest.mark.parametrize(("args", "fragment"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_one_clear_line(files, args, fragment):
    one_line_error(invoke(*args), fragment)


def test_accepted_with_a_note(files):
    for args in (["--preemption-mode", "swap", "--swap-space", "8"], ["--scheduler", "continuum", "-O", "offload=true",
                                                                       "--swap-space", "8"]):  # fmt: skip
        assert invoke("run", *args, *N).exit_code == 0  # the CPU tier in use: its size acts
    res = invoke("run", "--pp", "3", *N)
    assert res.exit_code == 0, res.output
    assert "note: PP 3 does not divide llama-3.1-8b's 32 layers" in res.stderr
    res = invoke("run", "--router", "least-tokens", "--replicas", "2", "--json", *N)  # hyphens as flags have them
    assert res.exit_code == 0 and json.loads(res.stdout)["completed"] == 20


@pytest.mark.parametrize("args", [["run", "-o", ""], ["run", "--report="], ["run", "--trace-out", " "],
                                  ["search", "--store", "", "--slo", "p90_ttft:100"], ["run", "-c", ""]])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(files, monkeypatch, capsys, args):
    from servesim.cli import main

    monkeypatch.setattr("sys.argv", ["servesim", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    flag = args[1].rstrip("=")
    assert exit_.value.code == 2 and f"{flag} is empty; give a path or drop the flag" in capsys.readouterr().err
    assert not Path("summary.json").exists()  # nothing written where the run was started

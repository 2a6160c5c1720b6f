"""The `servesim` command line."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from servesim.config import SLO, Scenario, load_scenario, validation_message
from servesim.errors import ServesimError

app = typer.Typer(
    help="Simulate and plan LLM inference serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)


def friendly(fn):
    """Turn user errors into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ServesimError as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        except ValidationError as e:
            err.print(f"[bold red]error:[/] {escape(validation_message(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    return wrapper


Opt = typer.Option


@app.command()
@friendly
def run(
    config: Annotated[Path | None, Opt("--config", "-c", help="scenario TOML file")] = None,
    model: Annotated[str | None, Opt(help="catalog name or config.json path")] = None,
    gpu: Annotated[str | None, Opt(help="GPU name (see `servesim gpus`)")] = None,
    gpu_file: Annotated[Path | None, Opt(help="TOML file of extra GPUs")] = None,
    perf_model: Annotated[str | None, Opt(help="auto | profiled | roofline")] = None,
    tp: Annotated[int | None, Opt(help="tensor parallel size")] = None,
    pp: Annotated[int | None, Opt(help="pipeline parallel size")] = None,
    ep: Annotated[int | None, Opt(help="expert parallel size (MoE)")] = None,
    expert_skew: Annotated[float | None, Opt(help="busiest GPU's expert load over the mean")] = None,
    replicas: Annotated[int | None, Opt(help="engine replicas behind the router")] = None,
    router: Annotated[
        str | None, Opt(help="round_robin | random | least_requests | least_tokens | prefix_affinity")
    ] = (None),
    scheduler: Annotated[str | None, Opt(help="vllm | sarathi | orca | static")] = None,
    max_num_seqs: Annotated[int | None, Opt()] = None,
    max_num_batched_tokens: Annotated[int | None, Opt()] = None,
    chunk_size: Annotated[int | None, Opt(help="token budget of the sarathi scheduler")] = None,
    block_size: Annotated[int | None, Opt()] = None,
    gpu_memory_utilization: Annotated[float | None, Opt()] = None,
    enable_prefix_caching: Annotated[bool | None, Opt("--enable-prefix-caching/--no-enable-prefix-caching")] = None,
    max_model_len: Annotated[int | None, Opt()] = None,
    dtype: Annotated[str | None, Opt(help="bf16 | fp16 | fp8 weights")] = None,
    num_requests: Annotated[int | None, Opt()] = None,
    rate: Annotated[float | None, Opt(help="requests/s; inf = all at once")] = None,
    arrival: Annotated[str | None, Opt(help="poisson | gamma | constant | burst | trace")] = None,
    burstiness: Annotated[float | None, Opt(help="gamma shape (1 = Poisson)")] = None,
    input_dist: Annotated[str | None, Opt(help="fixed | uniform | lognormal")] = None,
    input_mean: Annotated[float | None, Opt(help="mean input tokens")] = None,
    input_sigma: Annotated[float | None, Opt(help="lognormal shape of input lengths")] = None,
    input_min: Annotated[int | None, Opt()] = None,
    input_max: Annotated[int | None, Opt()] = None,
    output_dist: Annotated[str | None, Opt(help="fixed | uniform | lognormal")] = None,
    output_mean: Annotated[float | None, Opt(help="mean output tokens")] = None,
    output_sigma: Annotated[float | None, Opt(help="lognormal shape of output lengths")] = None,
    output_min: Annotated[int | None, Opt()] = None,
    output_max: Annotated[int | None, Opt()] = None,
    trace: Annotated[Path | None, Opt(help="Azure CSV or Mooncake JSONL trace")] = None,
    trace_format: Annotated[str | None, Opt(help="auto | azure | mooncake")] = None,
    trace_sample: Annotated[str | None, Opt(help="head | random")] = None,
    time_scale: Annotated[float | None, Opt(help="speed-up of trace timestamps")] = None,
    seed: Annotated[int | None, Opt()] = None,
    goodput: Annotated[list[str] | None, Opt(help="SLOs, e.g. 'ttft:500 tpot:50' (ms)")] = None,
    prefill_replicas: Annotated[int | None, Opt(help="disaggregate: prefill pool size")] = None,
    decode_replicas: Annotated[int | None, Opt(help="disaggregate: decode pool size")] = None,
    prefill_gpu: Annotated[str | None, Opt(help="prefill pool GPU (default --gpu)")] = None,
    decode_gpu: Annotated[str | None, Opt(help="decode pool GPU (default --gpu)")] = None,
    prefill_tp: Annotated[int | None, Opt(help="prefill pool tensor parallel size")] = None,
    decode_tp: Annotated[int | None, Opt(help="decode pool tensor parallel size")] = None,
    kv_transfer: Annotated[str | None, Opt(help="layerwise | whole")] = None,
    migration: Annotated[bool | None, Opt("--migration/--no-migration", help="live migration (Llumnix)")] = None,
    power_cap: Annotated[float | None, Opt(help="per-GPU power cap, W")] = None,
    power_budget: Annotated[float | None, Opt(help="cluster power budget, W (POLCA controller)")] = None,
    price_per_gpu_hour: Annotated[float | None, Opt(help="USD per GPU-hour (default: catalog)")] = None,
    kv_bandwidth_gbs: Annotated[float | None, Opt(help="KV transfer GB/s per GPU")] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="directory for summary and records")] = None,
    fmt: Annotated[str, Opt("--format", help="parquet | csv records")] = "parquet",
    as_json: Annotated[bool, Opt("--json", help="print the summary as JSON")] = False,
    report: Annotated[Path | None, Opt(help="write a self-contained HTML report")] = None,
    trace_out: Annotated[Path | None, Opt(help="write the iteration timeline (Chrome trace JSON)")] = None,
):
    """Simulate one engine replica serving a request stream (defaults: Llama-3.1-8B on one H100)."""
    from servesim.api import simulate

    scenario = load_scenario(config) if config else Scenario()
    data = scenario.model_dump(exclude_none=True)
    top = dict(model=model, gpu=gpu, gpu_file=gpu_file, perf_model=perf_model, replicas=replicas, router=router)
    engine = dict(
        tp=tp,
        pp=pp,
        ep=ep,
        expert_skew=expert_skew,
        scheduler=scheduler,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        chunk_size=chunk_size,
        block_size=block_size,
        gpu_memory_utilization=gpu_memory_utilization,
        enable_prefix_caching=enable_prefix_caching,
        max_model_len=max_model_len,
        dtype=dtype,
    )
    workload = dict(
        num_requests=num_requests,
        rate=rate,
        arrival=arrival,
        burstiness=burstiness,
        trace=trace,
        trace_format=trace_format,
        trace_sample=trace_sample,
        time_scale=time_scale,
        seed=seed,
    )
    lengths = {
        "input": dict(dist=input_dist, mean=input_mean, sigma=input_sigma, min=input_min, max=input_max),
        "output": dict(dist=output_dist, mean=output_mean, sigma=output_sigma, min=output_min, max=output_max),
    }
    data.update({k: v for k, v in top.items() if v is not None})
    data["engine"].update({k: v for k, v in engine.items() if v is not None})
    data["workload"].update({k: v for k, v in workload.items() if v is not None})
    for key, fields in lengths.items():
        data["workload"][key].update({k: v for k, v in fields.items() if v is not None})
    if trace is not None and num_requests is None:
        data["workload"].pop("num_requests", None)
        data["workload"]["num_requests"] = None
    if goodput:
        data["slo"] = SLO.parse(goodput).model_dump(exclude_none=True)
    pools = {"prefill": (prefill_replicas, prefill_gpu, prefill_tp), "decode": (decode_replicas, decode_gpu, decode_tp)}
    for name, (count, pool_gpu, pool_tp) in pools.items():
        if count is None and pool_gpu is None and pool_tp is None:
            continue
        pool = data.get(name) or {"engine": dict(data["engine"])}
        pool.update({k: v for k, v in (("replicas", count), ("gpu", pool_gpu)) if v is not None})
        if pool_tp is not None:
            pool["engine"]["tp"] = pool_tp
        data[name] = pool
    if migration is not None:
        data["migration"]["enabled"] = migration
    power = {"cap_w": power_cap, "budget_w": power_budget, "price_per_gpu_hour": price_per_gpu_hour}
    data["power"].update({k: v for k, v in power.items() if v is not None})
    data["kv_transfer"].update({k: v for k, v in (("mode", kv_transfer), ("bandwidth_gbs", kv_bandwidth_gbs)) if v})
    if fmt not in ("parquet", "csv"):
        raise ServesimError(f"--format must be parquet or csv, not '{fmt}'")
    scenario = Scenario.model_validate(data)

    result = simulate(scenario)
    summary = result.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        from servesim.report.table import summary_table

        e = scenario.engine
        reps = f"{scenario.replicas} x " if scenario.replicas > 1 else ""
        title = f"{scenario.model} on {reps}{e.tp}x {scenario.gpu}, scheduler {e.scheduler}, {summary['perf_model']}"
        console.print(summary_table(summary, title))
    if output:
        paths = result.save(output, fmt)
        err.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)
    if report:
        from servesim.report.html import run_report

        err.print(f"wrote {run_report(result, report)}", highlight=False)
    if trace_out:
        from servesim.report.trace import chrome_trace

        err.print(f"wrote {chrome_trace(result, trace_out)}", highlight=False)


def _ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ServesimError(f"{flag} '{text}' must be a comma-separated list of integers, e.g. 1,2,4") from None


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [x for x in text.replace(" ", "").split(",") if x]


@app.command()
@friendly
def search(
    config: Annotated[Path | None, Opt("--config", "-c", help="scenario TOML: the base, and a [search] table")] = None,
    model: Annotated[str | None, Opt(help="catalog name or config.json path")] = None,
    gpus: Annotated[str | None, Opt(help="comma list, e.g. h100-sxm,h200,a100")] = None,
    tp: Annotated[str | None, Opt(help="comma list of tensor parallel sizes")] = None,
    pp: Annotated[str | None, Opt(help="comma list of pipeline parallel sizes")] = None,
    ep: Annotated[str | None, Opt(help="comma list of expert parallel sizes (MoE)")] = None,
    replicas: Annotated[str | None, Opt(help="comma list of replica counts")] = None,
    schedulers: Annotated[str | None, Opt(help="comma list: vllm,sarathi,orca,static")] = None,
    max_num_seqs: Annotated[str | None, Opt(help="comma list")] = None,
    max_num_batched_tokens: Annotated[str | None, Opt(help="comma list")] = None,
    pd: Annotated[str | None, Opt(help="disaggregated layouts, e.g. 1P1D,2P1D")] = None,
    slo: Annotated[list[str] | None, Opt(help="e.g. 'p90_ttft:2000 p90_tpot:50' (ms)")] = None,
    objective: Annotated[str, Opt(help="goodput_per_dollar | goodput_per_gpu | goodput_per_watt")] = (
        "goodput_per_dollar"
    ),
    num_requests: Annotated[int, Opt(help="requests per simulation of the capacity search")] = 400,
    rate_tol: Annotated[float, Opt(help="relative precision of each capacity")] = 0.05,
    workers: Annotated[int | None, Opt(help="local processes (default: all cores)")] = None,
    ray_address: Annotated[str | None, Opt(help="run on a Ray cluster: an address or 'auto'")] = None,
    store: Annotated[Path, Opt(help="results store: finished evaluations are kept and reused")] = Path(
        "servesim-search.sqlite"
    ),
    report: Annotated[Path | None, Opt(help="write a self-contained HTML report")] = None,
    best_out: Annotated[Path | None, Opt(help="write the best deployment as a scenario file")] = None,
    top: Annotated[int, Opt(help="rows of the ranking to print")] = 15,
    as_json: Annotated[bool, Opt("--json", help="print all results as JSON")] = False,
):
    """Search deployments for the one that serves the workload best within the SLOs."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from servesim.hardware import get_gpu
    from servesim.models import get_model
    from servesim.search import SearchSpace, parse_targets, run_search
    from servesim.search.pareto import frontier, rank
    from servesim.search.runner import OBJECTIVES
    from servesim.search.space import expand

    if objective not in OBJECTIVES:
        raise ServesimError(f"--objective must be one of {', '.join(OBJECTIVES)}, not '{objective}'")
    sections = {"search": {}}
    scenario = load_scenario(config, sections) if config else Scenario()
    space_data = sections["search"]
    if model:
        scenario = scenario.model_copy(update={"model": model})
    flags = {
        "gpus": _names(gpus),
        "tp": _ints(tp, "--tp"),
        "pp": _ints(pp, "--pp"),
        "ep": _ints(ep, "--ep"),
        "replicas": _ints(replicas, "--replicas"),
        "schedulers": _names(schedulers),
        "max_num_seqs": _ints(max_num_seqs, "--max-num-seqs"),
        "max_num_batched_tokens": _ints(max_num_batched_tokens, "--max-num-batched-tokens"),
        "pd": _names(pd),
    }
    space_data.update({k: v for k, v in flags.items() if v is not None})
    space = SearchSpace.model_validate(space_data)
    targets = parse_targets(slo or [])
    get_model(scenario.model)  # bad names fail before the progress bar starts
    for name in space.gpus:
        get_gpu(name, scenario.gpu_file)
    expand(space)  # and so do malformed xPyD layouts
    best_label = ["-"]

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        disable=as_json,
    ) as bar:
        task = bar.add_task("searching", total=None)

        def progress(done, running, total, results):
            ranked = rank(list(results.values()), objective)
            if ranked:
                best_label[0] = f"{ranked[0]['label']} ({ranked[0][objective]:.2f})"
            bar.update(task, total=total, completed=done, description=f"running {running:2d}  best: {best_label[0]}")

        out = run_search(scenario, space, targets, str(store), num_requests, rate_tol, workers, ray_address, progress)
    ranked = rank(out["results"], objective)
    if as_json:
        print(
            json.dumps(
                {
                    "objective": objective,
                    "ranked": ranked,
                    **{k: out[k] for k in ("candidates", "evaluated", "reused")},
                },
                indent=2,
                default=str,
            )
        )
    else:
        t = Table(
            title=f"{scenario.model}: {len(ranked)} of {out['candidates']} candidates meet "
            f"{', '.join(str(x) for x in targets)} ({out['evaluated']} evaluated, {out['reused']} reused)"
        )
        for col in ("rank", "deployment", "GPUs", "capacity req/s", objective, "USD/h", "P90 TTFT", "P90 TPOT"):
            t.add_column(col, justify="left" if col == "deployment" else "right")
        for i, r in enumerate(ranked[:top]):
            t.add_row(
                str(i + 1),
                r["label"],
                str(r["gpus"]),
                f"{r['capacity']:.2f}",
                f"{r[objective]:.2f}",
                f"{r['usd_per_hour']:.2f}",
                f"{r['ttft_p90_ms']:.0f}",
                f"{r['tpot_p90_ms']:.1f}",
            )
        console.print(t)
        front = frontier(ranked, "usd_per_m_requests", "tpot_p90_ms")
        console.print(
            "Pareto frontier (cost per million requests vs P90 TPOT): "
            + "; ".join(f"{r['label']} ${r['usd_per_m_requests']:.0f}/M {r['tpot_p90_ms']:.1f} ms" for r in front)
        )
        if not ranked:
            console.print("no candidate meets the SLOs; relax them or widen the search")
        kinds = sorted({r.get("perf_model", "?") for r in ranked})
        if len(kinds) > 1:
            err.print(
                f"note: candidates were priced by different performance models ({', '.join(kinds)}); "
                "for a like-for-like GPU comparison pass a scenario with perf_model = 'roofline'"
            )
    if report:
        from servesim.report.html import search_report

        err.print(f"wrote {search_report(out, objective, targets, report)}", highlight=False)
    if best_out and ranked:
        from servesim.report.toml_out import write_scenario
        from servesim.search.space import Candidate

        best = Candidate(**ranked[0]["candidate"]).scenario(scenario)
        rate = ranked[0]["capacity"]
        best = best.model_copy(update={"workload": best.workload.model_copy(update={"rate": rate})})
        header = (
            f"best deployment by {objective}: {ranked[0]['label']}\ncapacity {rate:.2f} req/s within "
            f"{', '.join(str(x) for x in targets)}; written by servesim search"
        )
        err.print(f"wrote {write_scenario(best, best_out, header)}", highlight=False)


def _parse_prefill(text: str) -> tuple[int, int]:
    length, _, ctx = text.partition(":")
    try:
        n, c = int(length), int(ctx or 0)
    except ValueError:
        raise ServesimError(f"--prefill '{text}' must be LEN or LEN:CTX (integers)") from None
    if n < 1 or c < 0:
        raise ServesimError(f"--prefill '{text}': LEN must be >= 1 and CTX >= 0")
    return n, c


def _parse_decode(text: str) -> tuple[int, int]:
    count, sep, ctx = text.lower().partition("x")
    try:
        n, c = int(count), int(ctx)
    except ValueError:
        raise ServesimError(f"--decode '{text}' must be COUNTxCTX, e.g. 64x2048") from None
    if not sep or n < 1 or c < 1:
        raise ServesimError(f"--decode '{text}': COUNT and CTX must be >= 1")
    return n, c


@app.command()
@friendly
def step(
    model: Annotated[str, Opt(help="catalog name or config.json path")] = "llama-3.1-8b",
    gpu: Annotated[str, Opt(help="GPU name")] = "h100-sxm",
    gpu_file: Annotated[Path | None, Opt(help="TOML file of extra GPUs")] = None,
    tp: Annotated[int, Opt(help="tensor parallel size")] = 1,
    dtype: Annotated[str, Opt(help="bf16 | fp16 | fp8")] = "bf16",
    perf_model: Annotated[str, Opt(help="auto | profiled | roofline")] = "auto",
    prefill: Annotated[list[str] | None, Opt(help="LEN[:CTX], a chunk of LEN new tokens after CTX cached")] = None,
    decode: Annotated[list[str] | None, Opt(help="COUNTxCTX, COUNT decodes with CTX tokens of context")] = None,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
):
    """Predict the time of one engine iteration, with a per-operator breakdown."""
    from servesim.config import EngineConfig
    from servesim.hardware import get_gpu
    from servesim.models import get_model
    from servesim.perf import Batch
    from servesim.perf.energy import PowerModel
    from servesim.perf.profiled import describe, make_perf_model
    from servesim.sim.memory import kv_dtype

    if not prefill and not decode:
        raise ServesimError("give at least one --prefill LEN[:CTX] or --decode COUNTxCTX")
    batch = Batch()
    for text in prefill or []:
        batch = batch + Batch.prefill(*_parse_prefill(text))
    for text in decode or []:
        batch = batch + Batch.decode(*_parse_decode(text))
    engine = EngineConfig(tp=tp, dtype=dtype)
    m, g = get_model(model), get_gpu(gpu, gpu_file)
    perf = make_perf_model(m, g, tp, engine.dtype, kv_dtype(engine), perf_model)
    ops = perf.breakdown(batch)
    total = perf.iteration_time(batch)
    power = PowerModel.for_gpu(g, getattr(perf, "profile", None))
    watts = power.watts(ops)
    if as_json:
        doc = {
            "model": m.name,
            "gpu": g.name,
            "tp": tp,
            "dtype": dtype,
            "perf_model": describe(perf),
            "batch": {
                "num_tokens": batch.num_tokens,
                "num_seqs": batch.num_seqs,
                "num_decodes": batch.num_decodes,
                "decode_ctx_sum": batch.decode_ctx_sum,
                "prefill_lens": list(batch.prefill_lens),
                "prefill_ctx": list(batch.prefill_ctx),
            },
            "seconds": total,
            "joules": watts * total * tp,
            "watts_per_gpu": watts,
            "power_source": power.source,
            "breakdown": {op.name: op.seconds for op in ops},
            "ops": [
                {"name": o.name, "seconds": o.seconds, "flops": o.flops, "bytes": o.bytes, "bound": o.bound}
                for o in ops
            ],
        }
        print(json.dumps(doc, indent=2))
        return
    from servesim.report.table import breakdown_table

    title = f"{m.name} on {tp}x {g.name}: {batch.num_tokens} tokens, {batch.num_seqs} sequences ({describe(perf)})"
    console.print(breakdown_table(ops, total, title))
    console.print(f"energy: {watts * total * tp:.3f} J ({watts:.0f} W per GPU x {tp} GPU, {power.source} power)")


@app.command()
@friendly
def models():
    """List the built-in models with their derived sizes."""
    from servesim.models import get_model, model_names

    t = Table(title="models")
    for col in (
        "name",
        "type",
        "params (B)",
        "active (B)",
        "layers",
        "hidden",
        "heads/kv",
        "KV/token (KiB)",
        "max context",
    ):
        t.add_column(col, justify="left" if col in ("name", "type") else "right")
    for name in model_names():
        m = get_model(name)
        heads = f"{m.heads}/{'MLA' if m.is_mla else m.kv_heads}"
        t.add_row(
            name,
            m.model_type,
            f"{m.num_params / 1e9:.2f}",
            f"{m.active_params / 1e9:.2f}",
            str(m.layers),
            str(m.hidden),
            heads,
            f"{m.kv_bytes_per_token() / 1024:.1f}",
            str(m.max_position),
        )
    console.print(t)


@app.command()
@friendly
def gpus(gpu_file: Annotated[Path | None, Opt(help="TOML file of extra GPUs")] = None):
    """List the GPU catalog (datasheet figures) and which performance model each uses."""
    from servesim.hardware import catalog
    from servesim.perf.profile_data import find_profile, load_profile

    t = Table(title="GPUs")
    for col in (
        "name",
        "bf16 TFLOP/s",
        "fp8 TFLOP/s",
        "memory GiB",
        "HBM GB/s",
        "link GB/s",
        "TDP W",
        "$/h",
        "perf model",
    ):
        t.add_column(col, justify="left" if col in ("name", "perf model") else "right")
    for g in catalog(gpu_file).values():
        path = find_profile(g.name)
        kind = f"profiled ({load_profile(path).meta.get('date', '?')})" if path else "roofline (not measured)"
        t.add_row(
            g.name,
            f"{g.bf16_tflops:g}",
            f"{g.fp8_tflops:g}" if g.fp8_tflops else "-",
            f"{g.memory_gib:g}",
            f"{g.mem_bw_gbs:g}",
            f"{g.link_gbs:g}",
            f"{g.tdp_w:g}",
            f"{g.price_per_hour:.2f}",
            kind,
        )
    console.print(t)


@app.command()
@friendly
def profile(
    gpu: Annotated[str, Opt(help="catalog name the profile is for, e.g. h200")],
    out: Annotated[Path, Opt(help="folder to write the profile into")],
    quick: Annotated[bool, Opt(help="a small grid, for trying the profiler out")] = False,
    sections: Annotated[str, Opt(help="comma list of gemm,attention,elementwise,calibration,power,collectives")] = (
        "gemm,attention,elementwise,calibration,power,collectives"
    ),
):
    """Measure this machine's GPU kernels into a profile (needs servesim\\[profile] and a CUDA GPU)."""
    try:
        import torch
    except ImportError:
        raise ServesimError("servesim profile needs PyTorch: pip install 'servesim[profile]'") from None
    if not torch.cuda.is_available():
        raise ServesimError("servesim profile needs a CUDA GPU; none is visible")
    from servesim.hardware import get_gpu
    from servesim.profiler.measure import run_profile

    run_profile(out, get_gpu(gpu).name, quick=quick, sections=sections)


@app.command()
@friendly
def validate(
    model: Annotated[str, Opt(help="dense catalog model to run")] = "llama-3.1-8b",
    gpu: Annotated[str, Opt(help="the GPU this runs on (catalog name)")] = "h200",
    out: Annotated[Path | None, Opt(help="CSV of measured and predicted times")] = None,
    measured: Annotated[Path | None, Opt(help="compare an earlier measurement CSV instead of running")] = None,
    measure_only: Annotated[bool, Opt(help="measure and save, without comparing")] = False,
    profile_dir: Annotated[Path | None, Opt("--profile", help="profile folder (default: the shipped one)")] = None,
):
    """Time real forward passes of a model (needs a GPU) and compare them with predictions."""
    import pandas as pd

    from servesim.hardware import get_gpu
    from servesim.models import get_model
    from servesim.profiler.validate import compare, error_stats, measure, save

    spec, g = get_model(model), get_gpu(gpu)
    if measured is not None:
        if not measured.is_file():
            raise ServesimError(f"measurement file {measured} not found")
        df = pd.read_csv(measured)
    else:
        try:
            import torch
        except ImportError:
            raise ServesimError("servesim validate needs PyTorch and a CUDA GPU (or --measured FILE)") from None
        if not torch.cuda.is_available():
            raise ServesimError("servesim validate needs a CUDA GPU (or --measured FILE)")
        df = measure(spec, g.name, log=lambda m: err.print(m, highlight=False))
    if measure_only:
        save(df, out or Path(f"validation_{g.name}_{spec.name}.csv"))
        return
    from servesim.perf import RooflineModel
    from servesim.perf.profiled import ProfiledModel, load_profile_for

    prof = load_profile_for(g.name, profile_dir)
    if prof is None:
        raise ServesimError(f"no profile for {g.name}; pass --profile DIR")
    df = compare(df, {"profiled": ProfiledModel(spec, g, prof), "roofline": RooflineModel(spec, g)})
    if out:
        save(df, out)
    t = Table(title=f"{spec.name} on {g.name}: measured vs predicted forward time")
    for col in ("kind", "batch", "measured ms", "profiled ms", "err %", "roofline ms", "err %"):
        t.add_column(col, justify="left" if col in ("kind", "batch") else "right")
    for r in df.itertuples():
        shape = (f"{r.chunk}:{r.chunk_ctx}" if r.chunk else "") + (" + " if r.chunk and r.decodes else "")
        shape += f"{r.decodes}x{r.decode_ctx}" if r.decodes else ""
        t.add_row(
            r.kind,
            shape,
            f"{r.measured_s * 1e3:.3f}",
            f"{r.profiled_s * 1e3:.3f}",
            f"{r.profiled_ape:.1f}",
            f"{r.roofline_s * 1e3:.3f}",
            f"{r.roofline_ape:.1f}",
        )
    console.print(t)
    for name in ("profiled", "roofline"):
        st = error_stats(df, name)
        console.print(
            f"{name:9s} median APE {st['median_ape']:.1f}%  P90 {st['p90_ape']:.1f}%  worst {st['max_ape']:.1f}%"
            f"  ({st['points']} batches)"
        )


def main() -> None:
    app(prog_name="servesim")


if __name__ == "__main__":
    sys.exit(main())

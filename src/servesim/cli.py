"""The `servesim` command line: flags in, the library's answers out. No modelling happens here."""

# (no `from __future__ import annotations`: typer would evaluate every annotation string at start-up)

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from servesim.config import (
    SLO,
    Scenario,
    apply_flags,
    inert_flags,
    load_scenario,
    parse_numbers,
    validation_message,
    with_pools,
)
from servesim.errors import ServesimError
from servesim.files import check_output_dir, check_output_file, distinct_outputs

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
            msg = str(e)
        except ValidationError as e:
            msg = validation_message(e)
        except OSError as e:  # a file that became unreadable or unwritable while we ran
            msg = f"{e.filename or 'file'}: {e.strerror or e}"
        err.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    return wrapper


def note(text: str) -> None:
    err.print(f"[yellow]note:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _names(kind: str) -> str:
    """The built-ins, for a help text: policies and routers are named as their modules, so listing those
    imports none of them; pipeline schedules (`1f1b`) are not."""
    from servesim.pipeline.schedule import SCHEDULES
    from servesim.sim.router import ROUTERS
    from servesim.sim.scheduler import SCHEDULERS

    if kind == "pipeline":
        return " | ".join(SCHEDULES.names())
    return " | ".join({"scheduler": SCHEDULERS, "router": ROUTERS}[kind].module_names())


def _write_views(result, report: Path | None, report_fn: str, trace_out: Path | None, trace_fn: str) -> None:
    """Write the HTML report and the Chrome trace that were asked for (report/html.py, report/trace.py)."""
    if report:
        from servesim.report import html

        err.print(f"wrote {getattr(html, report_fn)(result, report)}", highlight=False)
    if trace_out:
        from servesim.report import trace

        err.print(f"wrote {getattr(trace, trace_fn)(result, trace_out)}", highlight=False)


Opt = typer.Option


class RunProgress:
    """A progress bar on stderr for a run that has gone on for more than `after_s` (on a terminal only)."""

    def __init__(self, total: int | None, enabled: bool, after_s: float = 2.0, console: Console | None = None):
        import time

        self.console = console or err
        self.total, self.enabled = total, enabled and self.console.is_terminal
        self.after = time.monotonic() + after_s
        self.done, self.bar = 0, None

    def __enter__(self):
        return self

    def __call__(self, n: int) -> None:
        import time

        self.done += n
        if not self.enabled:
            return
        if self.bar is None and time.monotonic() >= self.after:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("requests"),
                                TimeElapsedColumn(), console=self.console, transient=True)  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("run", total=self.total)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


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
    ep: Annotated[int | None, Opt(help="expert parallel size (MoE; divides --tp x --dp)")] = None,
    dp: Annotated[int | None, Opt(help="data-parallel attention ranks of a replica (MoE), each on --tp GPUs")] = None,
    expert_skew: Annotated[float | None, Opt(help="busiest GPU's expert load over the mean")] = None,
    replicas: Annotated[int | None, Opt(help="engine replicas behind the router")] = None,
    router: Annotated[str | None, Opt(help=_names("router"))] = None,
    partitions: Annotated[int | None, Opt(help="independent replica groups, simulated in parallel")] = None,
    workers: Annotated[int | None, Opt(help="local processes for --partitions (default: one per core)")] = None,
    ray_address: Annotated[str | None, Opt(help="run the partitions on this Ray cluster (auto, host:port)")] = None,
    scheduler: Annotated[str | None, Opt(help=_names("scheduler"))] = None,
    scheduler_option: Annotated[
        list[str] | None, Opt("--scheduler-option", "-O", help="a policy setting KEY=VALUE, e.g. chunk_size=512")
    ] = None,
    max_num_seqs: Annotated[int | None, Opt()] = None,
    max_num_batched_tokens: Annotated[int | None, Opt()] = None,
    block_size: Annotated[int | None, Opt()] = None,
    gpu_memory_utilization: Annotated[float | None, Opt()] = None,
    enable_prefix_caching: Annotated[bool | None, Opt("--enable-prefix-caching/--no-enable-prefix-caching")] = None,
    max_model_len: Annotated[int | None, Opt()] = None,
    preemption_mode: Annotated[str | None, Opt(help="recompute | swap (to the CPU KV tier)")] = None,
    swap_space: Annotated[float | None, Opt(help="CPU memory for swapped KV per GPU, GiB")] = None,
    swap_group_blocks: Annotated[int | None, Opt(help="blocks per host copy (1: vLLM; more: FastSwitch)")] = None,
    dtype: Annotated[str | None, Opt(help="bf16 | fp16 | fp8 weights")] = None,
    kv_cache_dtype: Annotated[str | None, Opt(help="auto | bf16 | fp16 | fp8 KV cache (auto: as vLLM)")] = None,
    quantization: Annotated[str | None, Opt(help="awq | gptq | awq_marlin | gptq_marlin (weight-only) | fp8")] = None,
    quantization_bits: Annotated[int | None, Opt(help="4 (W4A16) | 8 (W8A16, gptq)")] = None,
    speculative_method: Annotated[str | None, Opt(help="speculative decoding: eagle | draft_model | ngram")] = None,
    num_speculative_tokens: Annotated[int | None, Opt(help="tokens drafted per step (k)")] = None,
    acceptance_rate: Annotated[float | None, Opt(help="chance a drafted token is accepted (alpha)")] = None,
    draft_model: Annotated[str | None, Opt(help="draft_model: its catalog name")] = None,
    nano_batches: Annotated[int | None, Opt(help="NanoFlow: overlapped nano-batches per iteration (1: off)")] = None,
    offload: Annotated[str | None, Opt(help="offload policy: stream | flexgen | sparse (weights/KV in host memory, "
                                       "SSD or flash)")] = None,
    offload_tier: Annotated[str | None, Opt(help="tier of the offloaded weights: host | ssd | flash | none")] = None,
    kv_offload: Annotated[str | None, Opt(help="tier of the KV cache: host | ssd (default: the device)")] = None,
    offload_resident: Annotated[float | None, Opt(help="fraction of each layer's weights kept on the device")] = None,
    offload_attention: Annotated[str | None, Opt(help="device | near (attention next to an offloaded KV)")] = None,
    offload_prefetch: Annotated[bool | None, Opt("--offload-prefetch/--no-offload-prefetch",
                                                 help="load layer l+1 while layer l computes")] = None,
    gpu_batch: Annotated[int | None, Opt(help="flexgen: requests per micro-batch")] = None,
    sparsity: Annotated[float | None, Opt(help="sparse: fraction of FFN neurons inactive per token")] = None,
    semi_pd: Annotated[bool | None, Opt("--semi-pd/--no-semi-pd", help="semi-PD: prefill and decode workers "
                                        "side by side on each replica's GPUs, SMs split between them")] = None,
    num_requests: Annotated[int | None, Opt()] = None,
    rate: Annotated[float | None, Opt(help="requests/s; inf = all at once")] = None,
    offline: Annotated[
        bool, Opt("--offline", help="all requests at once (--rate inf), as vllm bench throughput / trtllm-bench run")
    ] = False,
    arrival: Annotated[str | None, Opt(help="poisson | gamma | constant | burst | trace")] = None,
    burstiness: Annotated[float | None, Opt(help="gamma shape (1 = Poisson)")] = None,
    rate_shape: Annotated[
        str | None, Opt(help="relative rates over the day, comma list (e.g. 24 hourly values); --rate is the mean")
    ] = None,
    rate_period_s: Annotated[float | None, Opt(help="the time --rate-shape covers, s (default: a day)")] = None,
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
    n: Annotated[int | None, Opt("--n", help="parallel samples per prompt (vLLM's SamplingParams.n)")] = None,
    programs: Annotated[
        str | None, Opt(help="sessions/agent programs: chain | dag (--rate, --num-requests count programs)")
    ] = None,
    calls: Annotated[int | None, Opt(help="LLM calls per program (dag: stages)")] = None,
    fanout: Annotated[int | None, Opt(help="dag: parallel calls per stage")] = None,
    new_input: Annotated[float | None, Opt(help="mean tokens each later call adds (message, tool result)")] = None,
    gap_s: Annotated[float | None, Opt(help="mean think/tool time between calls, s")] = None,
    gap_dist: Annotated[str | None, Opt(help="fixed | exponential | uniform | lognormal")] = None,
    trace: Annotated[Path | None, Opt(help="Azure CSV or Mooncake JSONL trace")] = None,
    trace_format: Annotated[str | None, Opt(help="auto | azure | mooncake | sessions")] = None,
    trace_sample: Annotated[str | None, Opt(help="head | random")] = None,
    time_scale: Annotated[float | None, Opt(help="speed-up of trace timestamps")] = None,
    seed: Annotated[int | None, Opt()] = None,
    goodput: Annotated[list[str] | None, Opt(help="SLOs, e.g. 'ttft:500 tpot:50' (ms)")] = None,
    pool: Annotated[list[str] | None, Opt(help="a pool of a mixed fleet, GPU:REPLICAS[:tpN], e.g. h100-sxm:2 "
                                            "(repeat for each pool; instead of --gpu and --replicas)")] = None,
    prefill_replicas: Annotated[int | None, Opt(help="disaggregate: prefill pool size")] = None,
    decode_replicas: Annotated[int | None, Opt(help="disaggregate: decode pool size")] = None,
    prefill_gpu: Annotated[str | None, Opt(help="prefill pool GPU (default --gpu)")] = None,
    decode_gpu: Annotated[str | None, Opt(help="decode pool GPU (default --gpu)")] = None,
    prefill_tp: Annotated[int | None, Opt(help="prefill pool tensor parallel size")] = None,
    decode_tp: Annotated[int | None, Opt(help="decode pool tensor parallel size")] = None,
    kv_transfer: Annotated[str | None, Opt(help="layerwise | whole")] = None,
    kv_bandwidth_gbs: Annotated[float | None, Opt(help="KV transfer GB/s per GPU")] = None,
    migration: Annotated[bool | None, Opt("--migration/--no-migration", help="live migration (Llumnix)")] = None,
    autoscale: Annotated[str | None, Opt(help="start and stop replicas during the run: reactive | predictive | "
                                              "scale_to_zero (--replicas: at the start)")] = None,
    min_replicas: Annotated[int | None, Opt(help="autoscaling: fewest replicas")] = None,
    max_replicas: Annotated[int | None, Opt(help="autoscaling: most replicas")] = None,
    cold_start_load_gbs: Annotated[float | None, Opt(help="autoscaling: weights loaded per GPU, GB/s")] = None,
    warmup_s: Annotated[float | None, Opt(help="autoscaling: engine warm-up after the weights, s (default 34)")] = None,
    power_cap: Annotated[float | None, Opt(help="per-GPU power cap, W")] = None,
    power_budget: Annotated[float | None, Opt(help="cluster power budget, W (POLCA controller)")] = None,
    price_per_gpu_hour: Annotated[float | None, Opt(help="USD per GPU-hour (default: catalog)")] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="directory for summary and records")] = None,
    stream: Annotated[
        bool, Opt("--stream", help="keep no requests in memory: summarise as the run goes, records to --output")
    ] = False,
    fmt: Annotated[str, Opt("--format", help="parquet | csv records")] = "parquet",
    as_json: Annotated[bool, Opt("--json", help="print the summary as JSON")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="no progress bar (shown on a terminal past 2 s)")] = False,
    report: Annotated[Path | None, Opt(help="write a self-contained HTML report")] = None,
    trace_out: Annotated[Path | None, Opt(help="write the iteration timeline (Chrome trace JSON)")] = None,
):
    """Simulate a deployment serving a request stream (defaults: Llama-3.1-8B on one H100)."""
    flags = dict(locals())
    for name in ("config", "scheduler_option", "goodput", "output", "fmt", "as_json", "report", "trace_out", "workers",
                 "ray_address", "stream", "offline", "pool", "quiet"):  # fmt: skip
        flags.pop(name)
    if pool and (gpu or replicas):
        raise ServesimError("--pool gives each pool its GPU and replicas; drop --gpu and --replicas")
    if offline:
        if rate is not None and rate != float("inf"):
            raise ServesimError(f"--offline sends every request at once; drop --rate {rate:g}")
        flags["rate"] = float("inf")
    if rate_shape is not None:
        flags["rate_shape"] = parse_numbers(rate_shape, "--rate-shape")
    if fmt not in ("parquet", "csv"):
        raise ServesimError(f"--format must be parquet or csv, not '{fmt}'")
    if stream and (fmt != "parquet" or report or trace_out):
        raise ServesimError("--stream writes Parquet records and keeps no timeline: drop --format csv, --report "
                            "and --trace-out, or run without --stream")  # fmt: skip
    for path, flag in ((report, "--report"), (trace_out, "--trace-out")):
        if path:
            check_output_file(path, flag)
    if output:
        check_output_dir(output, "--output", fresh=True)
    distinct_outputs([(report, "--report"), (trace_out, "--trace-out")], (output, "--output"),
                     ("summary.json", "scenario.json", "power.csv"))  # fmt: skip
    base = load_scenario(config) if config else Scenario()
    scenario = apply_flags(base, flags, scheduler_option)
    if pool:
        scenario = with_pools(scenario, pool)
    inert_flags({**flags, "workers": workers, "ray_address": ray_address}, scenario, base)
    if fmt != "parquet" and not output:
        raise ServesimError("--format names the records' file type and acts only with --output; add -o DIR or drop it")
    if goodput:
        scenario = scenario.model_copy(update={"slo": SLO.parse(goodput)})

    from servesim.api import simulate
    from servesim.run import memory_warning

    if warning := memory_warning(scenario, stream):
        note(warning)
    wl = scenario.workload
    with RunProgress(wl.num_requests * wl.n if wl.num_requests else None, not (quiet or as_json)) as progress:
        result = simulate(scenario, workers, ray_address, stream, output if stream else None, progress)
    for text in result.notes:
        note(text)
    summary = result.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        from servesim.report.table import summary_table

        console.print(summary_table(summary, result.title()))
    if output:
        paths = result.save(output, fmt)
        err.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)
    _write_views(result, report, "run_report", trace_out, "chrome_trace")


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
    schedulers: Annotated[str | None, Opt(help="comma list of: " + _names("scheduler"))] = None,
    max_num_seqs: Annotated[str | None, Opt(help="comma list")] = None,
    max_num_batched_tokens: Annotated[str | None, Opt(help="comma list")] = None,
    pd: Annotated[str | None, Opt(help="disaggregated layouts, e.g. 1P1D,2P1D")] = None,
    power_caps: Annotated[str | None, Opt(help="per-GPU power caps to try beside uncapped, W, e.g. 450,550")] = None,
    slo: Annotated[list[str] | None, Opt(help="e.g. 'p90_ttft:2000 p90_tpot:50' (ms)")] = None,
    objective: Annotated[str, Opt(help="goodput_per_dollar | goodput_per_gpu | goodput_per_watt | "
                                       "tokens_per_joule")] = "goodput_per_dollar",
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
    mix: Annotated[bool, Opt("--mix", help="the cheapest fleet mixing --gpus (at each --tp) that serves --rate "
                                           "under --slo, verified by simulation")] = False,
    rate: Annotated[float | None, Opt(help="--mix: the request rate the fleet must serve (req/s)")] = None,
):
    """Search deployments for the one that serves the workload best within the SLOs."""
    if top < 1:
        raise ServesimError(f"--top must be at least 1 (rows of the ranking to print), not {top}")
    if mix or rate is not None:
        given = [f"--{k.replace('_', '-')}" for k, v in (("pp", pp), ("ep", ep), ("replicas", replicas),
                 ("schedulers", schedulers), ("max_num_seqs", max_num_seqs), ("pd", pd), ("report", report),
                 ("max_num_batched_tokens", max_num_batched_tokens), ("workers", workers), ("power_caps", power_caps),
                 ("ray_address", ray_address)) if v is not None]  # fmt: skip
        if not mix or rate is None or not gpus or given:
            why = ("--rate needs --mix" if not mix else "--mix needs --rate and --gpus" if rate is None or not gpus
                   else f"--mix does not take {', '.join(given)}")  # fmt: skip
            raise ServesimError(f"{why}: servesim search --mix --gpus h100-sxm,a100,l40s [--tp 1,2] --rate 30 "
                                "--slo 'p90_ttft:2000 p90_tpot:80'")  # fmt: skip
        return _search_mix(config, model, gpus, tp, slo or [], rate, num_requests, rate_tol, best_out, as_json)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from servesim.search import parse_targets, run_search
    from servesim.search.pareto import frontier, rank
    from servesim.search.runner import check_search, objective_check
    from servesim.search.space import space_from

    objective_check(objective, num_requests, rate_tol, workers)
    for path, flag in ((report, "--report"), (best_out, "--best-out")):
        if path:
            check_output_file(path, flag)
    distinct_outputs([(store, "--store"), (report, "--report"), (best_out, "--best-out")])
    sections = {"search": {}}
    scenario = load_scenario(config, sections) if config else Scenario()
    if model:
        scenario = scenario.model_copy(update={"model": model})
    space = space_from(sections["search"], gpus=gpus, tp=tp, pp=pp, ep=ep, replicas=replicas, schedulers=schedulers,
                       max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens, pd=pd,
                       power_caps=power_caps)  # fmt: skip
    targets = parse_targets(slo or [])
    check_search(scenario, space, str(store))  # bad names, layouts and stores fail before the progress bar
    best_label = ["-"]

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, disable=as_json) as bar:  # fmt: skip
        task = bar.add_task("searching", total=None)

        def progress(done, running, total, results):
            ranked = rank(list(results.values()), objective)
            if ranked:
                best_label[0] = f"{ranked[0]['label']} ({ranked[0][objective]:.2f})"
            bar.update(task, total=total, completed=done, description=f"running {running:2d}  best: {best_label[0]}")

        out = run_search(scenario, space, targets, str(store), num_requests, rate_tol, workers, ray_address, progress)
    ranked = rank(out["results"], objective)
    if as_json:
        doc = {"objective": objective, "ranked": ranked, **{k: out[k] for k in ("candidates", "evaluated", "reused")}}
        print(json.dumps(doc, indent=2, default=str))
    else:
        from servesim.report.table import search_table

        slos = ", ".join(str(x) for x in targets)
        title = (f"{scenario.model}: {len(ranked)} of {out['candidates']} candidates meet {slos} "
                 f"({out['evaluated']} evaluated, {out['reused']} reused)")  # fmt: skip
        console.print(search_table(ranked, objective, title, top))
        front = frontier(ranked, "usd_per_m_requests", "tpot_p90_ms")
        console.print("Pareto frontier (cost per million requests vs P90 TPOT): "
                      + "; ".join(f"{r['label']} ${r['usd_per_m_requests']:.0f}/M {r['tpot_p90_ms']:.1f} ms"
                                  for r in front))  # fmt: skip
        if not ranked:
            console.print("no candidate meets the SLOs; relax them or widen the search")
        kinds = sorted({r.get("perf_model", "?") for r in ranked})
        if len(kinds) > 1:
            note(f"candidates were priced by different performance models ({', '.join(kinds)}); for a like-for-like "
                 "GPU comparison pass a scenario with perf_model = 'roofline'")  # fmt: skip
    if report:
        from servesim.report.html import search_report

        err.print(f"wrote {search_report(out, objective, targets, report)}", highlight=False)
    if best_out and ranked:
        from servesim.report.toml_out import write_best

        err.print(f"wrote {write_best(scenario, ranked[0], objective, targets, best_out)}", highlight=False)


def _search_mix(config, model, gpus: str, tp: str | None, slo: list[str], rate: float, num_requests: int,
                rate_tol: float, best_out: Path | None, as_json: bool) -> None:  # fmt: skip
    """`servesim search --mix`: print (and with --best-out, write) the cheapest verified fleet."""
    from servesim.search import parse_targets
    from servesim.search.mix import parse_options, search_mix

    if best_out:
        check_output_file(best_out, "--best-out")
    scenario = load_scenario(config) if config else Scenario()
    if model:
        scenario = scenario.model_copy(update={"model": model})
    tps = [int(x) for x in parse_numbers(tp, "--tp")] if tp else [1]
    options = parse_options([g.strip() for g in gpus.split(",") if g.strip()], tps)
    out = search_mix(scenario, options, rate, parse_targets(slo), num_requests, rate_tol,
                     log=lambda m: err.print(m, highlight=False))  # fmt: skip
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    else:
        from rich.table import Table

        t = Table(title=f"{scenario.model} at {rate:g} req/s under {', '.join(out['slo'])}: request-size buckets")
        for col in ("bucket", "share", "req/s", *out["capacity"]):
            t.add_column(col, justify="left" if col == "bucket" else "right")
        for k, b in enumerate(out["buckets"]):
            t.add_row(b["name"], f"{b['share']:.1%}", f"{b['rate']:.2f}",
                      *(f"{c[k]:.2f}" for c in out["capacity"].values()))  # fmt: skip
        console.print(t)
        m, single = out["mix"], out["best_single"]
        console.print(f"cheapest fleet: {m['fleet']}, ${m['usd_per_hour']:.2f}/h (verified: "
                      + ", ".join(f"{k} {v:.4g}" for k, v in m["summary"].items()) + ")")  # fmt: skip
        if single:
            console.print(f"best single type: {single['fleet']}, ${single['usd_per_hour']:.2f}/h; the mix saves "
                          f"{out['saving']:.1%}")  # fmt: skip
    if best_out:
        from servesim.config import ServicePool
        from servesim.report.toml_out import write_scenario

        pools = [ServicePool.model_validate(p) for p in out["mix"]["pools"]]
        wl = scenario.workload.model_copy(update={"rate": rate})
        fleet = scenario.model_copy(update={"pools": pools, "router": scenario.router or "size_aware", "workload": wl})
        header = f"servesim search --mix: the cheapest fleet for {rate:g} req/s under {', '.join(out['slo'])}"
        err.print(f"wrote {write_scenario(fleet, best_out, header)}", highlight=False)


@app.command()
@friendly
def pipeline(
    config: Annotated[Path | None, Opt("--config", "-c", help="pipeline TOML file")] = None,
    model: Annotated[str | None, Opt(help="dense catalog model or config.json")] = None,
    gpu: Annotated[str | None, Opt(help="GPU name")] = None,
    pp: Annotated[int | None, Opt(help="pipeline stages")] = None,
    tp: Annotated[int | None, Opt(help="tensor parallel size per stage")] = None,
    micro_batches: Annotated[int | None, Opt(help="micro-batches per step")] = None,
    micro_batch_size: Annotated[int | None, Opt(help="sequences per micro-batch")] = None,
    seq_len: Annotated[int | None, Opt(help="tokens per sequence")] = None,
    schedule: Annotated[str | None, Opt(help=_names("pipeline"))] = None,
    chunks: Annotated[int | None, Opt(help="model chunks per device (interleaved, bfpp)")] = None,
    perf_model: Annotated[str | None, Opt(help="auto | profiled | roofline")] = None,
    memory_limit_gib: Annotated[float | None, Opt(help="per-GPU memory limit (default: the GPU's memory)")] = None,
    search: Annotated[bool, Opt("--search", help="rank pp x tp x micro-batch size x schedule by throughput")] = False,
    pps: Annotated[str, Opt("--pps", help="with --search: pipeline sizes")] = "2,4,8",
    tps: Annotated[str, Opt("--tps", help="with --search: tensor parallel sizes")] = "1,2,4,8",
    sizes: Annotated[str, Opt("--sizes", help="with --search: micro-batch sizes")] = "1,2",
    schedules: Annotated[str | None, Opt("--schedules", help="with --search: schedules (default: all)")] = None,
    top: Annotated[int, Opt(help="rows of the search ranking to print")] = 15,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
    report: Annotated[Path | None, Opt(help="write an HTML report with the timeline")] = None,
    trace_out: Annotated[Path | None, Opt(help="write the timeline as a Chrome/Perfetto trace")] = None,
):
    """Price one pipeline-parallel training step under a schedule (1F1B, interleaved, Zero Bubble, ...)."""
    from servesim.pipeline import search_pipeline, simulate_pipeline
    from servesim.pipeline.config import load_pipeline_config
    from servesim.search.space import int_list, name_list

    for path, flag in ((report, "--report"), (trace_out, "--trace-out")):
        if path:
            check_output_file(path, flag)
    distinct_outputs([(report, "--report"), (trace_out, "--trace-out")])
    flags = dict(model=model, gpu=gpu, pp=pp, tp=tp, micro_batches=micro_batches, micro_batch_size=micro_batch_size,
                 seq_len=seq_len, schedule=schedule, chunks=chunks, perf_model=perf_model,
                 memory_limit_gib=memory_limit_gib)  # fmt: skip
    if top < 1:
        raise ServesimError(f"--top must be at least 1 (rows of the ranking to print), not {top}")
    if not search:  # what only the search reads
        given = [flag for flag, value, default in (("--pps", pps, "2,4,8"), ("--tps", tps, "1,2,4,8"),
                 ("--sizes", sizes, "1,2"), ("--schedules", schedules, None)) if value != default]  # fmt: skip
        if given:
            raise ServesimError(f"{', '.join(given)} act only with --search; add --search or drop them")
    elif report or trace_out:
        raise ServesimError("--search ranks layouts and writes no timeline; drop --report/--trace-out, or run one "
                            "layout without --search")  # fmt: skip
    cfg = load_pipeline_config(config, flags)
    if search:
        from servesim.pipeline.schedule import SCHEDULES

        names = name_list(schedules, "--schedules") if schedules is not None else SCHEDULES.names()
        for name in names:
            SCHEDULES.get(name)  # unknown schedules are one clear line, not a search that runs without them
        rows = search_pipeline(cfg, int_list(pps, "--pps"), int_list(tps, "--tps"), int_list(sizes, "--sizes"), names)
        if as_json:
            print(json.dumps(rows, indent=2, default=str))
            return
        from servesim.report.table import pipeline_search_table

        batch = cfg.micro_batches * cfg.micro_batch_size
        fits = sum(r["fits"] for r in rows)
        title = f"{cfg.model} on {cfg.gpu}: {fits} of {len(rows)} layouts fit, global batch {batch} x {cfg.seq_len}"
        console.print(pipeline_search_table(rows, title, top))
        return
    result = simulate_pipeline(cfg)
    if as_json:
        print(json.dumps(result.summary(), indent=2))
    else:
        from servesim.report.table import pipeline_table

        console.print(pipeline_table(result.summary()))
    _write_views(result, report, "pipeline_report", trace_out, "pipeline_trace")


@app.command()
@friendly
def step(
    model: Annotated[str, Opt(help="catalog name or config.json path")] = "llama-3.1-8b",
    gpu: Annotated[str, Opt(help="GPU name")] = "h100-sxm",
    gpu_file: Annotated[Path | None, Opt(help="TOML file of extra GPUs")] = None,
    tp: Annotated[int, Opt(help="tensor parallel size")] = 1,
    ep: Annotated[int, Opt(help="expert parallel size (MoE layers)")] = 1,
    dp: Annotated[int, Opt(help="data-parallel attention ranks (the batch is one rank's)")] = 1,
    dtype: Annotated[str, Opt(help="bf16 | fp16 | fp8")] = "bf16",
    kv_cache_dtype: Annotated[str, Opt(help="auto | bf16 | fp16 | fp8 KV cache (auto: as vLLM)")] = "auto",
    perf_model: Annotated[str, Opt(help="auto | profiled | roofline")] = "auto",
    prefill: Annotated[list[str] | None, Opt(help="LEN[:CTX], a chunk of LEN new tokens after CTX cached")] = None,
    decode: Annotated[list[str] | None, Opt(help="COUNTxCTX, COUNT decodes with CTX tokens of context")] = None,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
):
    """Predict the time of one engine iteration, with a per-operator breakdown."""
    from servesim.perf.step import parse_batch, price_step

    doc = price_step(model, gpu, parse_batch(prefill or [], decode or []), tp, dtype, perf_model, gpu_file,
                     kv_cache_dtype, ep, dp)  # fmt: skip
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    from servesim.report.table import breakdown_table

    b = doc["batch"]
    rank = " per attention rank" if dp > 1 else ""
    title = (f"{doc['model']} on {doc['gpus']}x {doc['gpu']} ({doc['layout']}): {b['num_tokens']} tokens, "
             f"{b['num_seqs']} sequences{rank} ({doc['perf_model']})")  # fmt: skip
    console.print(breakdown_table(doc["ops"], doc["seconds"], title))
    console.print(f"energy: {doc['joules']:.3f} J ({doc['watts_per_gpu']:.0f} W per GPU x {doc['gpus']} GPU, "
                  f"{doc['power_source']} power)")  # fmt: skip
    for text in doc["notes"]:
        err.print(f"note: {text}", highlight=False)


@app.command()
@friendly
def bound(
    config: Annotated[Path | None, Opt("--config", "-c", help="scenario TOML file")] = None,
    model: Annotated[str | None, Opt(help="catalog name or config.json path")] = None,
    gpu: Annotated[str | None, Opt(help="GPU name")] = None,
    tp: Annotated[int | None, Opt(help="tensor parallel size")] = None,
    ep: Annotated[int | None, Opt(help="expert parallel size")] = None,
    max_num_seqs: Annotated[int | None, Opt()] = None,
    input_mean: Annotated[float | None, Opt(help="mean prompt tokens")] = None,
    output_mean: Annotated[float | None, Opt(help="mean output tokens")] = None,
    num_requests: Annotated[int | None, Opt(help="requests of the offline simulation beside the bound")] = None,
    simulate: Annotated[bool, Opt("--simulate/--no-simulate", help="also simulate it offline")] = True,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
):
    """Upper bound on output throughput from memory capacity, bandwidth and compute (MoE-Lens), beside the
    simulated offline throughput of the same deployment."""
    from servesim.bound import bound_report

    flags = dict(model=model, gpu=gpu, tp=tp, ep=ep, max_num_seqs=max_num_seqs, input_mean=input_mean,
                 output_mean=output_mean, num_requests=num_requests)
    if num_requests is not None and not simulate:
        raise ServesimError("--num-requests sizes the offline simulation, which --no-simulate turns off; drop one")
    doc = bound_report(apply_flags(load_scenario(config) if config else Scenario(), flags), simulate)
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    for key, value in doc.items():
        console.print(f"{key:28s} {value:,.3f}" if isinstance(value, float) else f"{key:28s} {value}")


@app.command()
@friendly
def tts(
    model: Annotated[list[str], Opt(help="served model, repeatable: a catalog name, or CATALOG=ACCURACY where the "
                                    "accuracy parameters go by another name (qwen2.5-7b=deepseek-r1-distill-qwen-7b)")],
    strategy: Annotated[list[str], Opt(help="repeatable: 'NAME key=v1,v2 ...', every combination, e.g. "
                                       "'majority_vote n=1,4,16' or 'best_of_n n=8 verifier=true'")],
    benchmark: Annotated[str, Opt(help="the accuracy parameters' benchmark (servesim/tts/params.toml)")],
    rate: Annotated[float | None, Opt(help="questions per second (default: the scenario's, else 0.5)")] = None,
    questions: Annotated[int | None, Opt(help="questions simulated per (model, strategy) (default: the "
                                         "scenario's, else 200)")] = None,
    input_mean: Annotated[float | None, Opt(help="mean question tokens (lognormal)")] = None,
    output_mean: Annotated[float | None, Opt(help="mean tokens of each sample or attempt, reasoning included "
                                             "(lognormal; reasoning models: thousands)")] = None,
    config: Annotated[Path | None, Opt("--config", "-c", help="scenario TOML: the deployment")] = None,
    gpu: Annotated[str | None, Opt(help="GPU name")] = None,
    tp: Annotated[int | None, Opt(help="tensor parallel size")] = None,
    replicas: Annotated[int | None, Opt(help="replicas")] = None,
    router: Annotated[str | None, Opt(help="routing policy of the replicas")] = None,
    accuracy_file: Annotated[Path | None, Opt(help="TOML of more [MODEL.BENCHMARK] accuracy parameters")] = None,
    verifier_tpr: Annotated[float | None, Opt(help="assumed: a verifier accepts a correct answer this often "
                                              "(0.9)")] = None,
    verifier_fpr: Annotated[float | None, Opt(help="assumed: ... and a wrong one this often (0.1)")] = None,
    prm_auc: Annotated[float | None, Opt(help="assumed: a PRM ranks a correct step above a wrong one this "
                                         "often (0.8)")] = None,
    fix_rate: Annotated[float | None, Opt(help="assumed: a revision turns a wrong answer right this often "
                                          "(0.2)")] = None,
    break_rate: Annotated[float | None, Opt(help="assumed: ... and a right one wrong this often (0.05)")] = None,
    verifier_model: Annotated[str | None, Opt(help="best_of_n's verifier as a model of its own, on a pool of its "
                                              "own (default: the served model, on its replicas)")] = None,
    verifier_gpu: Annotated[str | None, Opt(help="with --verifier-model: its GPU (default: the served one's)")] = None,
    verifier_tp: Annotated[int | None, Opt(help="with --verifier-model: its tensor parallel size")] = None,
    verifier_replicas: Annotated[int | None, Opt(help="with --verifier-model: its replicas")] = None,
    report: Annotated[Path | None, Opt(help="write an HTML report with the Pareto frontiers")] = None,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
):
    """What accuracy each test-time scaling strategy buys per second, dollar and joule on a deployment, under
    load: a stated accuracy model joined with simulated serving (docs/test_time.md)."""
    from servesim.tts.planner import Judges, VerifierPool, idle_judges, parse_strategies, plan

    pool_flags = {"tp": verifier_tp, "replicas": verifier_replicas, "gpu": verifier_gpu}
    if verifier_model is None and any(v is not None for v in pool_flags.values()):
        given = ", ".join(f"--verifier-{k}" for k, v in pool_flags.items() if v is not None)
        raise ServesimError(f"{given} sizes the verifier's own pool, which needs --verifier-model; add it or drop it")
    pool = None if verifier_model is None else \
        VerifierPool(model=verifier_model, **{k: v for k, v in pool_flags.items() if v is not None})  # fmt: skip

    if report:
        check_output_file(report, "--report")
    scenario = load_scenario(config) if config else Scenario()
    given = scenario.workload.model_fields_set
    rate = rate if rate is not None else scenario.workload.rate if "rate" in given else 0.5
    if questions is None:
        questions = scenario.workload.num_requests if "num_requests" in given else None
        questions = questions or 200
    if not 1e-6 <= rate < float("inf"):
        raise ServesimError(f"--rate must be from 1e-6 questions per second, finite, not {rate:g}")
    if not 1 <= questions <= 1_000_000:
        raise ServesimError(f"--questions must be from 1 to 1,000,000, not {questions}")
    given = {"tpr": verifier_tpr, "fpr": verifier_fpr, "prm_auc": prm_auc, "fix_rate": fix_rate,
             "break_rate": break_rate}  # fmt: skip
    judges = Judges(**{k: v for k, v in given.items() if v is not None})
    wl = scenario.workload  # (a mean given: the cap at least 4x it, so that the lognormal is not cut at the default)
    caps = {f"{k}_max": max(getattr(wl, k).max, int(4 * m)) for k, m in (("input", input_mean), ("output", output_mean))
            if m is not None}  # fmt: skip
    base = apply_flags(scenario, dict(gpu=gpu, tp=tp, replicas=replicas, router=router, input_mean=input_mean,
                                      output_mean=output_mean, **caps))  # fmt: skip
    strategies = parse_strategies(strategy)
    flags = {"tpr": "--verifier-tpr", "fpr": "--verifier-fpr", "prm_auc": "--prm-auc", "fix_rate": "--fix-rate",
             "break_rate": "--break-rate"}  # fmt: skip
    for key, needs in idle_judges({k for k, v in given.items() if v is not None}, strategies):
        raise ServesimError(f"{flags[key]} acts only on {needs}, which no --strategy here is; add one or drop it")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), console=err, transient=True,
                  disable=as_json) as bar:  # fmt: skip
        task = bar.add_task("tts", total=len(model) * len(strategies))
        rows = plan(base, model, strategies, benchmark, rate, questions, judges, accuracy_file,
                    progress=lambda: bar.advance(task), verifier_pool=pool)  # fmt: skip
    meta = {"benchmark": benchmark, "rate": rate, "questions": questions, "judges": judges.model_dump(),
            "verifier_pool": None if pool is None else pool.model_dump(),
            "deployment": base.model_dump(mode="json", include={"gpu", "replicas", "router", "engine"})}  # fmt: skip
    if as_json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    else:
        from servesim.report.table import tts_table

        console.print(tts_table(rows, meta))
    if report:
        from servesim.report import html

        err.print(f"wrote {html.tts_report(rows, meta, report)}", highlight=False)


@app.command()
@friendly
def cascade(
    config: Annotated[Path | None, Opt("--config", "-c", help="cascade TOML (examples/cascade.toml); flags "
                                       "override it")] = None,
    device: Annotated[str | None, Opt(help="edge device (servesim gpus), default snapdragon-8-gen3")] = None,
    device_model: Annotated[str | None, Opt(help="the device's model, default llama-3.2-1b")] = None,
    cloud_gpu: Annotated[str | None, Opt(help="the cloud pool's GPU, default h100")] = None,
    cloud_model: Annotated[str | None, Opt(help="the cloud's model, default llama-3.1-70b")] = None,
    cloud_tp: Annotated[int | None, Opt(help="the cloud's tensor parallel size, default 4")] = None,
    cloud_replicas: Annotated[int | None, Opt(help="the cloud pool's replicas, default 1")] = None,
    escalate: Annotated[float | None, Opt(help="fraction of requests escalated, drawn with the seed")] = None,
    escalate_above: Annotated[int | None, Opt(help="escalate every prompt longer than this (not with "
                                              "--escalate)")] = None,
    when: Annotated[str | None, Opt(help="before: route (default); after: the device answers, then the "
                                    "escalated ones go up")] = None,
    rtt_ms: Annotated[float | None, Opt(help="device-cloud round trip, ms (default 50)")] = None,
    uplink_mbps: Annotated[float | None, Opt(help="uplink, Mbit/s (default 10)")] = None,
    downlink_mbps: Annotated[float | None, Opt(help="downlink, Mbit/s (default 50)")] = None,
    bytes_per_token: Annotated[float | None, Opt(help="bytes of a token on the wire (default 4)")] = None,
    devices: Annotated[int | None, Opt(help="devices, each serving its own user (default 4)")] = None,
    rate_per_device: Annotated[float | None, Opt(help="requests per second of each user (default 0.05)")] = None,
    num_requests: Annotated[int | None, Opt(help="requests of each user (default 50)")] = None,
    input_mean: Annotated[float | None, Opt(help="mean prompt tokens (lognormal)")] = None,
    output_mean: Annotated[float | None, Opt(help="mean answer tokens (lognormal)")] = None,
    seed: Annotated[int | None, Opt(help="seed of the streams and the escalation draws")] = None,
    gpu_file: Annotated[Path | None, Opt(help="TOML file of extra devices or GPUs")] = None,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
):
    """A small model on each device answers; some requests escalate to a cloud pool: end-to-end latency,
    device energy and battery, and cloud cost per request, priced by simulation (docs/edge.md)."""
    from servesim.edge.cascade import cascade_table, load_cascade, simulate_cascade

    flags = dict(device=device, device_model=device_model, cloud_gpu=cloud_gpu, cloud_model=cloud_model,
                 cloud_tp=cloud_tp, cloud_replicas=cloud_replicas, escalate=escalate, escalate_above=escalate_above,
                 when=when, rtt_ms=rtt_ms, uplink_mbps=uplink_mbps, downlink_mbps=downlink_mbps,
                 bytes_per_token=bytes_per_token, devices=devices, rate_per_device=rate_per_device,
                 num_requests=num_requests, input_mean=input_mean, output_mean=output_mean, seed=seed,
                 gpu_file=gpu_file)  # fmt: skip
    summary, _ = simulate_cascade(load_cascade(config, flags))
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(cascade_table(summary))


@app.command()
@friendly
def models():
    """List the built-in models with their derived sizes."""
    from servesim.report.table import models_table

    console.print(models_table())


@app.command()
@friendly
def gpus(gpu_file: Annotated[Path | None, Opt(help="TOML file of extra GPUs")] = None):
    """List the GPU catalog (datasheet figures) and which performance model each uses."""
    from servesim.report.table import gpus_table

    console.print(gpus_table(gpu_file))


@app.command()
@friendly
def policies():
    """List the registered scheduling and routing policies, with their options."""
    from servesim.report.table import policies_table

    console.print(policies_table())


@app.command()
@friendly
def profile(
    out: Annotated[Path, Opt("--out", "-o", help="folder to write the profile into")],
    gpu: Annotated[str | None, Opt(help="catalog name the profile is for, e.g. h200 (a CPU: optional)")] = None,
    quick: Annotated[bool, Opt(help="a small grid, for trying the profiler out")] = False,
    device: Annotated[str, Opt(help="gpu | cpu: what to measure")] = "gpu",
    threads: Annotated[str | None, Opt(help="--device cpu: comma list of thread counts (default: 1 and all "
                                            "cores)")] = None,
    sections: Annotated[str, Opt(help="comma list of gemm,attention,elementwise,calibration,power,collectives,fp8,"
                                      "fp8_attention,moe,mla,long_prefill")] = (
        "gemm,attention,elementwise,calibration,power,collectives"
    ),
):
    """Measure this machine's GPU kernels (or, --device cpu, its CPU) into a profile (needs servesim\\[profile])."""
    from servesim.perf.profile_data import SECTIONS

    if device not in ("gpu", "cpu"):
        raise ServesimError(f"--device {device} is unknown; use gpu or cpu")
    if device == "cpu":
        from servesim.hardware import get_gpu
        from servesim.profiler.cpu import parse_threads, run_cpu_profile

        counts = parse_threads(threads)
        name = get_gpu(gpu).name if gpu else "cpu"
        run_cpu_profile(check_output_dir(out, "--out"), counts, quick=quick, device=name,
                        log=lambda m: err.print(m, highlight=False))  # fmt: skip
        return
    if gpu is None:
        raise ServesimError("servesim profile needs --gpu NAME, the catalog GPU the profile is for (or --device cpu)")

    unknown = [s for s in sections.split(",") if s not in SECTIONS]
    if unknown:
        raise ServesimError(f"--sections: unknown section {', '.join(unknown)}; choose from {','.join(SECTIONS)}")
    try:
        import torch
    except ImportError:
        raise ServesimError("servesim profile needs PyTorch: pip install 'servesim[profile]'") from None
    if not torch.cuda.is_available():
        raise ServesimError("servesim profile needs a CUDA GPU; none is visible")
    from servesim.hardware import get_gpu
    from servesim.profiler.measure import run_profile

    run_profile(check_output_dir(out, "--out"), get_gpu(gpu).name, quick=quick, sections=sections)


@app.command()
@friendly
def validate(
    model: Annotated[str, Opt(help="catalog model to run (dense, MoE or MLA)")] = "llama-3.1-8b",
    gpu: Annotated[str | None, Opt(help="the GPU this runs on (catalog name; default h200, or with --device cpu "
                                         "epyc-zen4-2vcpu)")] = None,
    out: Annotated[Path | None, Opt(help="CSV of measured and predicted times")] = None,
    measured: Annotated[Path | None, Opt(help="compare an earlier measurement CSV instead of running")] = None,
    measure_only: Annotated[bool, Opt(help="measure and save, without comparing")] = False,
    profile_dir: Annotated[Path | None, Opt("--profile", help="profile folder (default: the shipped one)")] = None,
    dtype: Annotated[str, Opt(help="bf16 | fp8 weights of the layers' linear projections")] = "bf16",
    kv_cache_dtype: Annotated[str, Opt(help="auto | bf16 | fp8 KV cache (auto: bf16)")] = "auto",
    tp: Annotated[int, Opt(help="tensor parallel size: the model split over this many GPUs of this machine")] = 1,
    grid: Annotated[str, Opt(help="standard (prefill, decode and mixed batches) | long (prompts of 16k-128k "
                                  "tokens, one GPU)")] = "standard",
    device: Annotated[str, Opt(help="gpu | cpu: where the forward passes run")] = "gpu",
    threads: Annotated[int | None, Opt(help="--device cpu: torch threads (default: all cores)")] = None,
):
    """Time real forward passes of a model (on a GPU, or --device cpu) and compare them with predictions."""
    from servesim.profiler.validate import error_stats, validate_model

    if dtype not in ("bf16", "fp8") or kv_cache_dtype not in ("auto", "bf16", "fp8"):
        raise ServesimError(f"validate runs --dtype bf16|fp8 and --kv-cache-dtype auto|bf16|fp8, not {dtype} and "
                            f"{kv_cache_dtype}")  # fmt: skip
    if out:
        check_output_file(out, "--out")
    if tp > 1 and (dtype, kv_cache_dtype) != ("bf16", "auto"):
        raise ServesimError("tensor-parallel validation runs bf16 weights and KV cache; drop --dtype/--kv-cache-dtype")
    if device not in ("gpu", "cpu"):
        raise ServesimError(f"--device {device} is unknown; use gpu or cpu")
    if device == "cpu":  # bf16 forward passes of a dense model on this machine's CPU (profiler/cpu.py)
        from servesim.profiler.cpu import validate_cpu

        if measured or measure_only or tp > 1 or dtype != "bf16" or kv_cache_dtype == "fp8" or grid != "standard":
            raise ServesimError("--device cpu measures bf16 on its own grid here; drop --measured, --measure-only, "
                                "--tp, --dtype, --kv-cache-dtype and --grid")  # fmt: skip
        df, title = validate_cpu(model, gpu, threads, out, log=lambda m: err.print(m, highlight=False),
                                 profile_dir=profile_dir)  # fmt: skip
    else:
        if threads is not None:
            raise ServesimError("--threads sets the CPU's torch threads; pass it with --device cpu, or drop it")
        df, title = validate_model(model, gpu or "h200", out, measured, measure_only, profile_dir,
                                   log=lambda m: err.print(m, highlight=False), dtype=dtype,
                                   kv_dtype=kv_cache_dtype, tp=tp, grid=grid)  # fmt: skip
        if measure_only:
            return
    from servesim.report.table import validation_table

    console.print(validation_table(df, title))
    for name in ("profiled", "roofline"):
        st = error_stats(df, name)
        console.print(f"{name:9s} median APE {st['median_ape']:.1f}%  P90 {st['p90_ape']:.1f}%  worst "
                      f"{st['max_ape']:.1f}%  ({st['points']} batches)")  # fmt: skip


def empty_path(argv: list[str]) -> str | None:
    """The path flag given an empty value, which the parser would read as the current directory."""
    import typing

    command = next((c for c in app.registered_commands if (c.name or c.callback.__name__) == argv[0]), None) \
        if argv else None  # fmt: skip
    if command is None:
        return None
    names = set()
    for param, hint in typing.get_type_hints(command.callback, include_extras=True).items():
        base = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
        if Path in (*typing.get_args(base), base):
            decls = next((m.param_decls for m in getattr(hint, "__metadata__", ()) if m.param_decls), ())
            names |= set(decls) or {"--" + param.replace("_", "-")}
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in names and (not value.strip() if eq else i + 1 < len(argv) and not argv[i + 1].strip()):
            return name
    return None


def main() -> None:
    if name := empty_path(sys.argv[1:]):
        err.print(f"[bold red]error:[/] {name} is empty; give a path or drop the flag", highlight=False)
        sys.exit(2)
    app(prog_name="servesim")


if __name__ == "__main__":
    sys.exit(main())

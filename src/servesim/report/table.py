"""Rich tables for the terminal."""

from __future__ import annotations

import sys

from rich.table import Table


def _fmt(v, digits=2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def summary_table(s: dict, title: str = "servesim result") -> Table:
    """The run summary, laid out like `vllm bench serve` prints it."""
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("Successful requests", str(s["completed"])),
        ("Failed requests", str(s["failed"])),
        ("Duration (s)", _fmt(s["duration_s"])),
        ("Total input tokens", str(s["total_input_tokens"])),
        ("Total generated tokens", str(s["total_output_tokens"])),
        ("Request throughput (req/s)", _fmt(s["request_throughput"])),
        ("Output token throughput (tok/s)", _fmt(s["output_throughput"])),
        ("Total token throughput (tok/s)", _fmt(s["total_token_throughput"])),
    ]
    if "steady_state" in s:
        st = s["steady_state"]
        rows.append((f"Steady-state output throughput (tok/s) [{st['output_share']:.0%} of tokens]",
                     _fmt(st["output_throughput"])))  # fmt: skip
        rows.append(("Steady-state total token throughput (tok/s)", _fmt(st["total_token_throughput"])))
    if "request_goodput" in s:
        slo = " ".join(f"{k.removesuffix('_ms')}:{v:g}ms" for k, v in s["slo"].items())
        rows.append((f"Request goodput (req/s) [{slo}]", _fmt(s["request_goodput"])))
    for r in rows:
        t.add_row(*r)
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2el_ms", "E2EL")):
        st = s[key]
        t.add_section()
        for stat in ("mean", "median", "p90", "p99"):
            t.add_row(f"{stat.capitalize() if stat[0] != 'p' else stat.upper()} {label} (ms)", _fmt(st[stat]))
    for key, unit, part, done in (("programs", "program", "calls", "completion"),
                                  ("prompts", "prompt", "samples", "time to all samples")):  # fmt: skip
        if key not in s:
            continue
        p = s[key]
        t.add_section()
        t.add_row(f"{key.capitalize()} completed ({part})", f"{p['completed']} ({p['calls']})")
        t.add_row(f"{unit.capitalize()} throughput ({key}/s)", _fmt(p["throughput"], 3))
        for stat in ("mean", "median", "p90", "p99"):
            v = p["completion_ms"][stat]
            label = stat.capitalize() if stat[0] != "p" else stat.upper()
            t.add_row(f"{label} {unit} {done} (s)", _fmt(v / 1000 if v is not None else None))
        if key == "programs":
            t.add_row("Per program: tool / queued / running (s)",
                      " / ".join(_fmt(p[f"{k}_s_mean"]) for k in ("tool", "queued", "running")))  # fmt: skip
    if "tenants" in s:
        t.add_section()
        for name, x in s["tenants"].items():
            t.add_row(f"Tenant {name}: done, TTFT mean/P99, E2EL (ms)",
                      f"{x['completed']} / {_fmt(x['ttft_ms']['mean'], 0)}, {_fmt(x['ttft_ms']['p99'], 0)} / "
                      f"{_fmt(x['e2el_ms']['mean'], 0)}")  # fmt: skip
        f = s["fairness"]
        t.add_row("Jain's index while all tenants waited (s)",
                  f"{_fmt(f['jain_backlogged'], 3)} ({_fmt(f['backlogged_s'], 1)})")  # fmt: skip
    if "pools" in s:
        t.add_section()
        for name, x in s["pools"].items():
            what = f"{x['gpus']} x {x['gpu']} {x['layout']}" if "gpu" in x else f"{len(x['replicas'])} replicas"
            t.add_row(f"Pool {name} ({what}): requests, busy, USD",
                      f"{x['requests']}, {x['busy_fraction']:.0%}, {_fmt(x['cost_usd'], 4)}")  # fmt: skip
    t.add_section()
    b, kv = s["batch_size"], s["kv_cache"]
    t.add_row("Mean batch size (requests)", _fmt(b["mean"]))
    t.add_row("Max batch size (requests)", str(b["max"]))
    t.add_row("Mean tokens per iteration", _fmt(b["mean_tokens"], 1))
    t.add_row("KV cache usage mean / max", f"{kv['mean_usage']:.1%} / {kv['max_usage']:.1%}")
    if kv.get("prefix_hit_rate") is not None:
        t.add_row("Prefix cache hit rate", f"{kv['prefix_hit_rate']:.1%}")
    t.add_row("Preemptions", str(s["preemptions"]))
    if kv.get("swap_s"):
        t.add_row("KV copies to and from the CPU tier (s)", _fmt(kv["swap_s"]))
    if s.get("migrations"):
        t.add_row("Migrations", str(s["migrations"]))
    if "energy" in s:
        e, c = s["energy"], s["cost"]
        t.add_section()
        t.add_row("Energy (kJ, GPUs + hosts)", _fmt(e["total_j"] / 1e3))
        t.add_row("Energy per output token (J, decode)", _fmt(e["j_per_output_token"], 3))
        t.add_row("Energy per input token (J, prefill)", _fmt(e["j_per_input_token"], 4))
        t.add_row("Tokens per joule", _fmt(e["tokens_per_j"]))
        t.add_row("Power mean / peak (W)", f"{e['avg_power_w']:,.0f} / {e['peak_power_w']:,.0f}")
        t.add_row("Cost (USD, GPUs x time)", _fmt(c["total_usd"], 4))
        t.add_row("USD per M output / input tokens", f"{_fmt(c['usd_per_m_output_tokens'], 3)} / "
                  f"{_fmt(c['usd_per_m_input_tokens'], 3)}")  # fmt: skip
        t.add_row("Idle capacity cost (USD)", _fmt(c["idle_usd"], 4))
    if "power_control" in s:
        pc = s["power_control"]
        t.add_row("Power budget (W) / time capped", f"{pc['budget_w']:,.0f} / {pc['time_capped_fraction']:.1%}")
    for name in sorted(k for k in s if k == "thermal" or k.startswith("thermal_")):  # (sim/thermal.py)
        th = s[name]
        t.add_row(f"Throttled to {th['sustained_w']:g} W (device-s / events)",
                  f"{_fmt(th['throttled_replica_s'])} / {th['throttle_events']}")  # fmt: skip
    if "battery" in s:  # (edge/battery.py)
        b = s["battery"]
        t.add_section()
        t.add_row("Battery (Wh) / devices", f"{b['battery_wh']:g} / {b['devices']}")
        t.add_row("Device energy per output token (J)", _fmt(b["j_per_output_token"], 3))
        t.add_row("Output tokens per joule", _fmt(b["output_tokens_per_j"]))
        t.add_row("Battery per request (%)", _fmt(b["battery_pct_per_request"], 4))
        t.add_row("Hours to drain at this rate", _fmt(b["hours_to_drain"]))
    return t


def breakdown_table(ops: list[dict], total: float, title: str) -> Table:
    """Per-operator costs of one iteration (the `ops` of `perf.step.price_step`)."""
    t = Table(title=title, title_justify="left")
    for col, just in (
        ("operator", "left"),
        ("ms", "right"),
        ("share", "right"),
        ("GFLOP", "right"),
        ("MB moved", "right"),
        ("bound", "left"),
    ):
        t.add_column(col, justify=just)
    for op in ops:
        t.add_row(
            op["name"],
            f"{op['seconds'] * 1e3:.3f}",
            f"{op['seconds'] / total:.1%}" if total else "-",
            f"{op['flops'] / 1e9:,.1f}",
            f"{op['bytes'] / 1e6:,.1f}",
            op["bound"],
        )
    t.add_section()
    t.add_row("total", f"{total * 1e3:.3f}", "100%", "", "", "")
    return t


def _table(title: str, columns: list[str], left: tuple[str, ...] = ("name",)) -> Table:
    """A table whose `name` column is never wrapped or cut (it holds what a user types); the others give way."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col, justify="left" if col in left else "right", no_wrap=col == "name",
                     min_width=None if col != "name" else 4)  # fmt: skip
    return t


def models_table() -> Table:
    from servesim.models import get_model, model_names

    t = _table("models", ["name", "type", "params (B)", "active (B)", "layers", "hidden", "heads/kv",
                          "KV/token (KiB)", "max context"], ("name", "type"))  # fmt: skip
    for name in model_names():
        m = get_model(name)
        t.add_row(name, m.model_type, f"{m.num_params / 1e9:.2f}", f"{m.active_params / 1e9:.2f}", str(m.layers),
                  str(m.hidden), f"{m.heads}/{'MLA' if m.is_mla else m.kv_heads}",
                  f"{m.kv_bytes_per_token() / 1024:.1f}", str(m.max_position))  # fmt: skip
    return t


def gpus_table(gpu_file=None) -> Table:
    from servesim.hardware import catalog
    from servesim.perf.profile_data import find_profile, load_profile

    t = _table("devices", ["name", "kind", "bf16 TFLOP/s", "fp8 TFLOP/s", "memory GiB", "memory GB/s", "link GB/s",
                           "tiers (GiB @ GB/s to the device)", "TDP W", "$/h", "perf model"],
               ("name", "tiers (GiB @ GB/s to the device)", "perf model"))  # fmt: skip
    for g in catalog(gpu_file).values():
        path = find_profile(g.name) if g.kind == "gpu" else None
        kind = "roofline (not measured)"
        if g.kind == "cpu":
            from servesim.perf.cpu import find_cpu_profile

            cpu = find_cpu_profile(g.name)
            kind = "roofline, CPU parameters " + (f"fitted to its profile ({cpu.name})" if cpu else "(defaults)")
        elif g.kind == "soc":
            kind = "roofline, SoC parameters (not measured)"
        if path:
            prof = load_profile(path)
            kind = f"profiled {'bf16+fp8' if prof.gemm_fp8 else 'bf16'} ({prof.meta.get('date', '?')})"
        tiers = ", ".join(f"{x.name} {x.capacity_gib:g} @ {g.tier_path(x.name).read_gbs:g}" for x in g.tiers) or "-"
        t.add_row(g.name, g.kind, f"{g.bf16_tflops:g}", f"{g.fp8_tflops:g}" if g.fp8_tflops else "-",
                  f"{g.memory_gib:g}", f"{g.mem_bw_gbs:g}", f"{g.link_gbs:g}" if g.kind == "gpu" else "-", tiers,
                  f"{g.tdp_w:g}", f"{g.price_per_hour:.2f}", kind)  # fmt: skip
    return t


def search_table(ranked: list[dict], objective: str, title: str, top: int) -> Table:
    t = _table(title, ["rank", "deployment", "GPUs", "capacity req/s", objective, "USD/h", "P90 TTFT", "P90 TPOT"],
               ("deployment",))  # fmt: skip
    for i, r in enumerate(ranked[:top]):
        t.add_row(str(i + 1), r["label"], str(r["gpus"]), f"{r['capacity']:.2f}", f"{r[objective]:.2f}",
                  f"{r['usd_per_hour']:.2f}", f"{r['ttft_p90_ms']:.0f}", f"{r['tpot_p90_ms']:.1f}")  # fmt: skip
    return t


def validation_table(df, title: str) -> Table:
    t = _table(title, ["kind", "batch", "measured ms", "profiled ms", "err %", "roofline ms", "err %"],
               ("kind", "batch"))  # fmt: skip
    for r in df.itertuples():
        shape = (f"{r.chunk}:{r.chunk_ctx}" if r.chunk else "") + (" + " if r.chunk and r.decodes else "")
        shape += f"{r.decodes}x{r.decode_ctx}" if r.decodes else ""
        t.add_row(r.kind, shape, f"{r.measured_s * 1e3:.3f}", f"{r.profiled_s * 1e3:.3f}", f"{r.profiled_ape:.1f}",
                  f"{r.roofline_s * 1e3:.3f}", f"{r.roofline_ape:.1f}")  # fmt: skip
    return t


def policies_table() -> Table:
    from servesim.sim.autoscale import POLICIES
    from servesim.sim.router import ROUTERS
    from servesim.sim.scheduler import SCHEDULERS

    t = _table("policies", ["kind", "name", "options (scheduler_options / -O KEY=VALUE)", "what it does"],
               ("kind", "name", "options (scheduler_options / -O KEY=VALUE)", "what it does"))  # fmt: skip
    from servesim.offload import OFFLOADS

    for kind, reg in (("scheduler", SCHEDULERS), ("router", ROUTERS), ("autoscaler", POLICIES), ("offload", OFFLOADS)):
        for name in reg.names():
            cls = reg.get(name)
            doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
            fields = getattr(cls, "Options", None)
            opts = ", ".join(f"{k}={f.default}" for k, f in fields.model_fields.items()) if fields else "-"
            if kind == "offload":  # its settings live in [engine.offload]
                opts = ", ".join(getattr(cls, "options", ())) or "-"
            t.add_row(kind, name, opts, doc)
    return t


def pipeline_table(s: dict) -> Table:
    t = Table(title=f"{s['model']} on {s['gpus']}x {s['gpu']} (PP{s['pp']} TP{s['tp']}), schedule {s['schedule']}"
              f" (chunks {s['chunks']}), {s['perf_model']}", show_header=False, title_justify="left")  # fmt: skip
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        ("Micro-batches x size x sequence", f"{s['micro_batches']} x {s['micro_batch_size']} x {s['seq_len']}"),
        ("Step time, steady state (s)", f"{s['step_s']:.3f}"),
        ("Step time with a flush (s)", f"{s['flush_step_s']:.3f}"),
        ("Throughput (tokens/s)", f"{s['tokens_per_s']:,.0f}"),
        ("MFU", f"{s['mfu']:.1%}"),
        ("Bubble, mean over devices", f"{s['bubble_fraction']:.1%}"),
        ("Bubble per device", " ".join(f"{b:.1%}" for b in s["bubble_per_stage"])),
        ("F / B / W per virtual stage (ms)", " / ".join(f"{s['pass_ms'][k]:.1f}" for k in "FBW")),
        ("Peak activations per device (GiB)", " ".join(f"{x:.1f}" for x in s["peak_activation_gib"])),
        ("Peak memory per device (GiB)", " ".join(f"{x:.1f}" for x in s["peak_memory_gib"])),
    ]
    for r in rows:
        t.add_row(*r)
    return t


def pipeline_search_table(rows: list[dict], title: str, top: int) -> Table:
    t = _table(title, ["rank", "layout", "GPUs", "tokens/s", "tokens/s/GPU", "MFU", "bubble", "peak GiB", "fits"],
               ("layout", "fits"))  # fmt: skip
    for i, r in enumerate(rows[:top]):
        if "gpus" not in r:  # refused before it ran
            t.add_row(str(i + 1), r["label"], "-", "-", "-", "-", "-", "-", r["reason"])
            continue
        t.add_row(str(i + 1), r["label"], str(r["gpus"]), f"{r['tokens_per_s']:,.0f}",
                  f"{r['tokens_per_s'] / r['gpus']:,.0f}", f"{r['mfu']:.1%}", f"{r['bubble_fraction']:.1%}",
                  f"{max(r['peak_memory_gib']):.1f}", "yes" if r["fits"] else r["reason"])  # fmt: skip
    return t


def tts_table(rows: list[dict], meta: dict) -> Table:
    """`servesim tts`: each (model, strategy)'s stated accuracy beside its simulated latency, cost and energy;
    * marks the frontier of accuracy against cost per question, + against P90 time to the answer."""
    judges = ", ".join(f"{k} {v:g}" for k, v in meta["judges"].items())
    title = (f"{meta['benchmark']}: {meta['questions']} questions per row at {meta['rate']:g}/s (* frontier: "
             f"accuracy vs $; +: vs P90 time to answer; assumed judges: {judges})")  # fmt: skip
    t = _table(title, ["model", "strategy", "accuracy", "answered", "P90 TTFT ms", "P50 answer s", "P90 answer s",
                       "m$/question", "kJ/question", "calls", "front"], ("model", "strategy"))  # fmt: skip
    for col in t.columns[:2]:  # what the user typed: folded onto more lines, never cut
        col.overflow = "fold"
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.1%}" + ("" if r["accuracy_fitted"] else " (assumed)")
        t.add_row(r["model"], r["strategy"] + (f" ({r['note']})" if r.get("note") else ""), acc,
                  str(r["answered"]), _fmt(r["ttft_p90_ms"], 0), _fmt(r["answer_p50_s"], 1),
                  _fmt(r["answer_p90_s"], 1), f"{r['usd_per_question'] * 1e3:.3f}",
                  f"{r['j_per_question'] / 1e3:.2f}", f"{r['calls_per_question']:.1f}",
                  "*" * r["frontier_cost"] + "+" * r["frontier_latency"])  # fmt: skip
    return t

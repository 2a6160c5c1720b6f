"""Self-contained HTML reports (plotly, the library embedded once: no network needed to view them)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

MAX_POINTS = 3000
LAYOUT = dict(template="plotly_white", height=380, margin=dict(l=60, r=20, t=50, b=50))


def _thin(*arrays, limit=MAX_POINTS):
    n = len(arrays[0])
    if n <= limit:
        return arrays
    idx = np.linspace(0, n - 1, limit).astype(int)
    return tuple(np.asarray(a)[idx] for a in arrays)


def _fig_html(fig) -> str:
    fig.update_layout(**LAYOUT)
    return fig.to_html(full_html=False, include_plotlyjs=False)


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, sections: list[tuple[str, str]]) -> str:
    from plotly.offline import get_plotlyjs

    parts = "".join(f"<section><h2>{html.escape(h)}</h2>{body}</section>" for h, body in sections)
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
        "section{margin-bottom:28px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style><script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body><h1>{html.escape(title)}</h1>{parts}</body></html>"
    )


def _fmt(v, d=1):
    return "-" if v is None else f"{v:,.{d}f}"


def run_report(result, path: str | Path) -> Path:
    """Latency distributions, load and KV use over time, per-replica load and power of one run."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s, df = result.summary(), result.requests
    done = df[df.completed]
    sections = []
    rows = [
        (name, _fmt(s[k]["mean"]), _fmt(s[k]["median"]), _fmt(s[k]["p90"]), _fmt(s[k]["p99"]))
        for name, k in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("ITL", "itl_ms"), ("E2EL", "e2el_ms"))
    ]
    overview = [
        ("requests completed", s["completed"]),
        ("duration (s)", _fmt(s["duration_s"])),
        ("request throughput (req/s)", _fmt(s["request_throughput"], 2)),
        ("output throughput (tok/s)", _fmt(s["output_throughput"], 0)),
        ("energy (kJ)", _fmt(s["energy"]["total_j"] / 1e3)),
        ("cost (USD)", _fmt(s["cost"]["total_usd"], 4)),
        ("performance model", s["perf_model"]),
    ]
    sections.append(
        (
            "Summary",
            _table(overview, ("metric", "value"))
            + "<br>"
            + _table(rows, ("latency (ms)", "mean", "median", "P90", "P99")),
        )
    )
    if "pools" in s:  # several pools: each one's GPUs, share of the work, use, power and cost
        pools = [(name, f"{p['gpus']} x {p['gpu']} {p['layout']}" if "gpu" in p else "", p["requests"],
                  f"{p['busy_fraction']:.0%}", _fmt(p["mean_batch_size"]), f"{p['kv_mean_usage']:.1%}",
                  _fmt(p["avg_power_w"], 0), _fmt(p["cost_usd"], 4)) for name, p in s["pools"].items()]  # fmt: skip
        sections.append(("Pools", _table(pools, ("pool", "GPUs", "requests", "busy", "mean batch", "KV use",
                                                 "power (W)", "cost (USD)"))))  # fmt: skip

    fig = make_subplots(rows=1, cols=4, subplot_titles=("TTFT", "TPOT", "ITL", "E2EL"))
    itls = result._itls
    for col, values in enumerate((done.ttft_s, done.tpot_s.dropna(), itls.gaps, done.e2el_s), start=1):
        v = np.asarray(values, dtype=float)
        counts = itls.counts if col == 3 else np.ones(len(v))  # (each ITL value stands for its count of gaps)
        order = np.argsort(v, kind="stable")
        v, cum = v[order] * 1000, np.cumsum(counts[order])
        if len(v):
            x, y = _thin(v, cum / cum[-1])
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="ms", row=1, col=col)
    fig.update_yaxes(title_text="fraction of requests", row=1, col=1)
    sections.append(("Latency distributions (CDF)", _fig_html(fig)))

    fig = make_subplots(rows=1, cols=2, subplot_titles=("completed requests per second", "latency by arrival time"))
    t_end = max(s["duration_s"], 1.0)
    bins = np.linspace(0, t_end, 61)
    counts, _ = np.histogram(done.finish_s, bins)
    fig.add_trace(go.Bar(x=bins[:-1], y=counts / np.diff(bins), name="throughput"), row=1, col=1)
    idx = np.clip(np.digitize(done.arrival_s, bins) - 1, 0, len(bins) - 2)
    for col_name, label in (("ttft_s", "TTFT"), ("e2el_s", "E2EL")):
        means = [done[col_name][idx == b].mean() * 1000 if (idx == b).any() else None for b in range(len(bins) - 1)]
        fig.add_trace(go.Scatter(x=bins[:-1], y=means, mode="lines", name=f"mean {label} (ms)"), row=1, col=2)
    fig.update_xaxes(title_text="time (s)")
    sections.append(("Throughput and latency over the run", _fig_html(fig)))

    fig = make_subplots(rows=1, cols=3, subplot_titles=("batch size (requests)", "KV cache use", "waiting requests"))
    for i, (steps, mem) in enumerate(zip(result.replica_steps, result.memories, strict=True)):
        if not len(steps["start"]):
            continue
        t, seqs, kv, wait = _thin(
            steps["start"], steps["seqs"], steps["kv_used"] / max(mem.num_blocks, 1), steps["waiting"]
        )
        name = result.deployment.engine_label(i)
        for col, y in enumerate((seqs, kv, wait), start=1):
            fig.add_trace(
                go.Scatter(x=t, y=y, mode="lines", name=name, legendgroup=str(i), showlegend=col == 1), row=1, col=col
            )
    fig.update_xaxes(title_text="time (s)")
    sections.append(("Batch, KV cache and queue over time", _fig_html(fig)))

    served = df[df.completed].groupby("replica").size()
    d = result.deployment
    reps = list(range(d.replica_count))
    labels = [d.engine_label(d.engines_of(i)[0]).split(" rank")[0].split(" stream")[0] for i in reps]
    fig = go.Figure(go.Bar(x=labels, y=[int(served.get(i, 0)) for i in reps]))
    fig.update_layout(title="requests completed per replica")
    sections.append(("Per-replica load", _fig_html(fig)))

    power = result.power_series(1.0)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=power.time_s, y=power.cluster_w, name="cluster (with hosts)", mode="lines"))
    for col in [c for c in power.columns if c.startswith("replica_")][:16]:
        fig.add_trace(go.Scatter(x=power.time_s, y=power[col], name=col.removesuffix("_w"), mode="lines"))
    fig.update_layout(title="power (W, 1 s windows)", xaxis_title="time (s)", yaxis_title="W")
    sections.append(("Power over time", _fig_html(fig)))
    return _write(path, _page(f"servesim: {result.title()}", sections))


def search_report(out: dict, objective: str, targets: list, path: str | Path) -> Path:
    """Ranked candidates, Pareto frontiers with hover details, and capacity curves of the best."""
    import plotly.graph_objects as go

    from servesim.search.pareto import frontier, rank

    ranked = rank(out["results"], objective)
    sections = []
    header = ("rank", "deployment", "GPUs", "capacity req/s", objective, "USD/h", "P90 TTFT ms", "P90 TPOT ms")
    rows = [
        (
            i + 1,
            r["label"],
            r["gpus"],
            _fmt(r["capacity"], 2),
            _fmt(r[objective], 2),
            _fmt(r["usd_per_hour"], 2),
            _fmt(r["ttft_p90_ms"]),
            _fmt(r["tpot_p90_ms"]),
        )
        for i, r in enumerate(ranked[:30])
    ]
    slo = ", ".join(str(t) for t in targets)
    intro = (
        f"<p>{out['candidates']} candidates ({out['evaluated']} evaluated now, {out['reused']} from the "
        f"store); SLOs: {html.escape(slo)}; objective: {objective}.</p>"
    )
    sections.append(("Ranking", intro + _table(rows, header)))
    for x, y, xs, title in (
        ("usd_per_m_requests", "tpot_p90_ms", True, "cost per million requests vs P90 TPOT"),
        ("capacity", "tpot_p90_ms", False, "capacity vs P90 TPOT"),
    ):
        fig = go.Figure()
        hover = [f"{r['label']}<br>capacity {r['capacity']:.2f} req/s<br>{r['usd_per_hour']:.2f} USD/h" for r in ranked]
        fig.add_trace(
            go.Scatter(
                x=[r[x] for r in ranked],
                y=[r[y] for r in ranked],
                mode="markers",
                name="candidates",
                text=hover,
                hoverinfo="text",
            )
        )
        front = frontier(ranked, x, y, x_smaller=xs)
        fig.add_trace(
            go.Scatter(
                x=[r[x] for r in front],
                y=[r[y] for r in front],
                mode="lines+markers",
                name="Pareto frontier",
                text=[r["label"] for r in front],
                hoverinfo="text",
            )
        )
        fig.update_layout(title=title, xaxis_title=x, yaxis_title=y)
        sections.append((f"Pareto frontier: {title}", _fig_html(fig)))
    fig = go.Figure()
    for r in ranked[:6]:
        pts = sorted((p for p in r.get("runs", []) if np.isfinite(p["rate"])), key=lambda p: p["rate"])
        fig.add_trace(
            go.Scatter(
                x=[p["rate"] for p in pts], y=[p["throughput"] for p in pts], mode="lines+markers", name=r["label"]
            )
        )
    fig.update_layout(
        title="throughput vs offered rate (the capacity search's runs)",
        xaxis_title="offered req/s",
        yaxis_title="served req/s",
    )
    sections.append(("Throughput vs request rate", _fig_html(fig)))
    return _write(path, _page("servesim deployment search", sections))


def tts_report(rows: list[dict], meta: dict, path: str | Path) -> Path:
    """`servesim tts`: every (model, strategy), and the Pareto frontiers of stated accuracy against cost per
    question and against P90 time to the final answer."""
    import plotly.graph_objects as go

    from servesim.search.pareto import frontier

    scored = [r for r in rows if r["accuracy"] is not None]
    header = ("model", "strategy", "accuracy", "fitted", "P90 TTFT ms", "P50 answer s", "P90 answer s",
              "USD/question", "J/question", "calls")  # fmt: skip
    table = [(r["model"], r["strategy"], _fmt(None if r["accuracy"] is None else 100 * r["accuracy"]) + "%",
              "yes" if r["accuracy_fitted"] else "assumed", _fmt(r["ttft_p90_ms"], 0), _fmt(r["answer_p50_s"], 2),
              _fmt(r["answer_p90_s"], 2), _fmt(r["usd_per_question"], 5), _fmt(r["j_per_question"], 0),
              _fmt(r["calls_per_question"], 0)) for r in rows]  # fmt: skip
    judges = ", ".join(f"{k} {v:g}" for k, v in meta["judges"].items())
    intro = (f"<p>{meta['questions']} questions per row at {meta['rate']:g} per second; accuracy from the stated "
             f"model for {html.escape(meta['benchmark'])} (servesim/tts/params.toml, docs/test_time.md), never "
             f"simulated; assumed judges: {html.escape(judges)}.</p>")  # fmt: skip
    sections = [("Strategies", intro + _table(table, header))]
    for x, title in (("usd_per_question", "accuracy vs USD per question"),
                     ("answer_p90_s", "accuracy vs P90 time to the final answer (s)")):  # fmt: skip
        fig = go.Figure()
        for model in dict.fromkeys(r["model"] for r in scored):
            mine = [r for r in scored if r["model"] == model]
            fig.add_trace(go.Scatter(x=[r[x] for r in mine], y=[r["accuracy"] for r in mine], mode="markers",
                                     name=model, text=[r["strategy"] for r in mine], hoverinfo="text+x+y"))  # fmt: skip
        front = frontier(scored, x, "accuracy", y_smaller=False)
        fig.add_trace(go.Scatter(x=[r[x] for r in front], y=[r["accuracy"] for r in front], mode="lines",
                                 name="Pareto frontier", text=[f"{r['model']} {r['strategy']}" for r in front],
                                 hoverinfo="text"))  # fmt: skip
        fig.update_layout(title=title, xaxis_title=x, yaxis_title="accuracy")
        sections.append((f"Pareto frontier: {title}", _fig_html(fig)))
    return _write(path, _page("servesim test-time scaling plan", sections))


def _write(path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


PASS_COLORS = {"F": "#4C78A8", "B": "#F58518", "W": "#54A24B", "BW": "#E45756"}


def pipeline_report(result, path: str | Path) -> Path:
    """The step's timeline (the classic pipeline picture), and per-device bubble and memory."""
    import plotly.graph_objects as go

    s = result.summary()
    tl = result.timeline
    fig = go.Figure()
    for kind, color in PASS_COLORS.items():
        rows = [(d, op, a, b) for d, sl in enumerate(tl.slices) for op, a, b in sl if op.kind == kind]
        if not rows:
            continue
        fig.add_trace(go.Bar(
            y=[f"device {d}" for d, *_ in rows], x=[1e3 * (b - a) for *_, a, b in rows],
            base=[1e3 * a for *_, a, _ in rows], orientation="h", name=kind, marker_color=color,
            text=[str(op.mb) for _, op, _, _ in rows], textposition="inside", insidetextanchor="middle",
            hovertext=[f"{op} {1e3 * a:.1f}-{1e3 * b:.1f} ms" for _, op, a, b in rows], hoverinfo="text",
        ))  # fmt: skip
    fig.update_layout(title=f"{s['schedule']}: one step ({s['micro_batches']} micro-batches)", barmode="overlay",
                      xaxis_title="ms", yaxis=dict(autorange="reversed"), bargap=0.15)  # fmt: skip
    devices = [f"device {d}" for d in range(tl.devices)]
    static = [a - b for a, b in zip(s["peak_memory_gib"], s["peak_activation_gib"], strict=True)]
    mem = go.Figure([go.Bar(x=devices, y=s["peak_activation_gib"], name="activations"),
                     go.Bar(x=devices, y=static, name="weights, grads, optimizer")])  # fmt: skip
    mem.update_layout(barmode="stack", title="peak memory per GPU", yaxis_title="GiB")
    bub = go.Figure([go.Bar(x=devices, y=[100 * b for b in s["bubble_per_stage"]])])
    bub.update_layout(title="bubble per device", yaxis_title="% of the step")
    rows = [(k, _fmt(v, 3) if isinstance(v, float) else v) for k, v in s.items() if not isinstance(v, list | dict)]
    sections = [("Timeline", _fig_html(fig)), ("Summary", _table(rows, ("figure", "value"))),
                ("Memory", _fig_html(mem)), ("Bubble", _fig_html(bub))]  # fmt: skip
    title = f"servesim pipeline: {s['model']} on {s['gpus']}x {s['gpu']} (PP{s['pp']} TP{s['tp']})"
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(_page(title, sections))
    return p

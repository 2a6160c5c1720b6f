"""Edge-cloud cascades: a small model on each user's device answers, and some requests go to a cloud pool.

`CascadeConfig` says who serves what. Each of `devices` devices serves its own user's stream
(Poisson at `rate_per_device`, lengths from `input`/`output`; device k draws with seed + k). A request
escalates to the cloud pool (`cloud_model` on `cloud_replicas` replicas of `cloud_gpu` at `cloud_tp`)
if a seeded draw falls under `escalate`, or if its prompt is longer than `escalate_above` tokens (one
rule or the other, not both). With `when = "before"` the escalated request goes up at once (routing:
the device never sees it); with `when = "after"` the device answers every request, and the escalated
ones go up when the device has finished (a cascade: the device's answer is discarded, its work wasted).

The network adds, to an escalated request, half the round trip and the prompt's bytes over the uplink on
the way up, and half the round trip and the answer's bytes over the downlink on the way down (the whole
answer's, as if sent after its last token: an upper bound for a streamed answer). A token is
`bytes_per_token` bytes on the wire: 4 by default, OpenAI's rule of thumb of about four characters of
English text per token, sent as UTF-8. Cloud arrivals are put on a 1 ms grid (they pass through a
replayed trace). The cloud answers with as many tokens as the device would have.

It is priced with servesim's own simulation, as `tts/planner.py` prices a verifier on its own pool:
one run per device of the requests it serves, then one run of the cloud pool of every device's
escalations arriving when they reach it (nothing comes back from the cloud to a device's queue, so the
runs together are the joint timeline), joined per request. TTFT is the first token of the answer the
user keeps. Device energy per request is the device run's joules of that request's tokens (its share of
the iterations; idle draw belongs to no request, and the radio is not counted); cloud cost is the cloud
run's GPU-hours at the GPU's price (idle time included) over the requests it served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from servesim.config import (
    SHAREGPT_INPUT,
    SHAREGPT_OUTPUT,
    EngineConfig,
    LengthDist,
    Scenario,
    WorkloadConfig,
    validation_message,
)
from servesim.errors import ServesimError
from servesim.files import read_structured

BYTES_PER_TOKEN = 4.0  # ~4 characters of English per token (OpenAI's tokenizer guide), one byte each in UTF-8


class CascadeConfig(BaseModel, extra="forbid", allow_inf_nan=False):
    """An edge-cloud cascade: the devices and their model, the cloud pool, the escalation rule, the network."""

    device: str = Field("snapdragon-8-gen3", description="the edge device (servesim gpus: a soc or cpu)")
    device_model: str = Field("llama-3.2-1b", description="the model each device runs")
    devices: int = Field(4, ge=1, le=10_000, description="devices, each serving its own user's stream")
    rate_per_device: float = Field(0.05, gt=0, description="requests per second of each user")
    num_requests: int = Field(50, ge=1, le=1_000_000, description="requests of each user")
    input: LengthDist = Field(default_factory=lambda: SHAREGPT_INPUT.model_copy())
    output: LengthDist = Field(default_factory=lambda: SHAREGPT_OUTPUT.model_copy())
    seed: int = Field(0, ge=0)
    cloud_gpu: str = "h100"
    cloud_model: str = "llama-3.1-70b"
    cloud_tp: int = Field(4, ge=1)
    cloud_replicas: int = Field(1, ge=1)
    escalate: float | None = Field(None, description="fraction of requests escalated, drawn with the seed")
    escalate_above: int | None = Field(None, description="escalate every prompt longer than this many tokens")
    when: Literal["before", "after"] = Field("before", description="before: route; after: the device answers "
                                             "first, and the escalated answer replaces its own")  # fmt: skip
    rtt_ms: float = Field(50.0, description="device-cloud round trip, ms")
    uplink_mbps: float = Field(10.0, description="device-to-cloud bandwidth, Mbit/s")
    downlink_mbps: float = Field(50.0, description="cloud-to-device bandwidth, Mbit/s")
    bytes_per_token: float = Field(BYTES_PER_TOKEN, gt=0, le=64, description="bytes of a token on the wire")
    perf_model: Literal["auto", "roofline", "profiled"] = "auto"
    gpu_file: Path | None = Field(None, description="TOML of more devices or GPUs")

    @field_validator("escalate")
    @classmethod
    def _fraction(cls, v):
        if v is not None and not 0 <= v <= 1:
            raise ValueError(f"the escalated fraction must be in [0, 1], not {v:g}; e.g. 0.2 sends one in five")
        return v

    @field_validator("escalate_above")
    @classmethod
    def _threshold(cls, v):
        if v is not None and v < 0:
            raise ValueError(f"a prompt length threshold must be 0 or more tokens, not {v}")
        return v

    @field_validator("rtt_ms")
    @classmethod
    def _rtt(cls, v):
        if v < 0:
            raise ValueError(f"a round trip cannot be negative ({v:g} ms); give 0 or more")
        return v

    @field_validator("uplink_mbps", "downlink_mbps")
    @classmethod
    def _bandwidth(cls, v):
        if v <= 0:
            raise ValueError(f"a bandwidth must be above 0 Mbit/s, not {v:g}")
        return v

    @model_validator(mode="after")
    def _rule(self):
        if self.escalate is None and self.escalate_above is None:
            raise ValueError("say which requests escalate: escalate FRACTION (--escalate) or escalate_above TOKENS "
                             "(--escalate-above)")  # fmt: skip
        if self.escalate is not None and self.escalate_above is not None:
            raise ValueError("escalate (a drawn fraction) and escalate_above (a prompt length) are two rules; give "
                             "one")  # fmt: skip
        if self.escalate_above is not None and self.when == "after":
            raise ValueError("escalate_above decides on the prompt, known before the device answers; use when = "
                             "before (--when before), or a drawn fraction (--escalate) after")  # fmt: skip
        if self.escalate_above is not None and self.escalate_above >= self.input.max:
            raise ValueError(f"escalate_above {self.escalate_above} is not below the longest prompt "
                             f"(input.max {self.input.max}): nothing would escalate; lower it")  # fmt: skip
        return self

    def up_s(self, tokens) -> np.ndarray:
        """Seconds from the device sending `tokens` of prompt to the cloud having them."""
        return self.rtt_ms / 2e3 + np.asarray(tokens) * self.bytes_per_token * 8 / (self.uplink_mbps * 1e6)

    def down_s(self, tokens) -> np.ndarray:
        """Seconds from the cloud's last token to the device having `tokens` of answer."""
        return self.rtt_ms / 2e3 + np.asarray(tokens) * self.bytes_per_token * 8 / (self.downlink_mbps * 1e6)


def load_cascade(path: str | Path | None = None, flags: dict | None = None) -> CascadeConfig:
    """A cascade from a TOML file (its [cascade] table, or the file's top level) with `flags` over it (None:
    not given), checked; one line on bad input."""
    data, origin = {}, ""
    if path is not None:
        data = read_structured(Path(path), "cascade file")
        data = data.get("cascade", data)
        origin = str(path)
    data = {**data, **{k: v for k, v in (flags or {}).items() if v is not None}}
    for key, dist in (("input_mean", "input"), ("output_mean", "output")):  # (--input-mean, --output-mean)
        if key in data:
            mean = data.pop(key)
            base = dict(data.get(dist) or {})
            data[dist] = {**base, "mean": mean, "max": max(base.get("max", 4096), int(4 * mean))}
    try:
        cfg = CascadeConfig(**data)
    except ValidationError as e:
        raise ServesimError(validation_message(e, origin)) from None
    if path is not None and cfg.gpu_file is not None and not cfg.gpu_file.is_absolute():
        cfg = cfg.model_copy(update={"gpu_file": Path(path).parent / cfg.gpu_file})
    return cfg


def device_scenario(cfg: CascadeConfig, workload: WorkloadConfig | None = None) -> Scenario:
    return Scenario(model=cfg.device_model, gpu=cfg.device, gpu_file=cfg.gpu_file, perf_model=cfg.perf_model,
                    workload=workload or WorkloadConfig())  # fmt: skip


def cloud_scenario(cfg: CascadeConfig, workload: WorkloadConfig | None = None) -> Scenario:
    return Scenario(model=cfg.cloud_model, gpu=cfg.cloud_gpu, gpu_file=cfg.gpu_file, perf_model=cfg.perf_model,
                    engine=EngineConfig(tp=cfg.cloud_tp), replicas=cfg.cloud_replicas,
                    router="least_tokens" if cfg.cloud_replicas > 1 else None,
                    workload=workload or WorkloadConfig())  # fmt: skip


def check(cfg: CascadeConfig) -> None:
    """Both deployments can run (the device model fits the device, the cloud model its pool); one line if not."""
    from servesim.sim.deployment import plan

    for side, sc in (("device", device_scenario(cfg)), ("cloud", cloud_scenario(cfg))):
        try:
            plan(sc)
        except ServesimError as e:
            flag = "--device-model or --device" if side == "device" else "--cloud-model, --cloud-gpu or --cloud-tp"
            raise ServesimError(f"{side}: {e} (cascade: change {flag})") from None


def streams(cfg: CascadeConfig) -> pd.DataFrame:
    """Every user's requests: device, arrival_s (on a 1 ms grid), input_len, output_len, escalated."""
    from servesim.workload import generate

    frames = []
    for k in range(cfg.devices):
        wl = WorkloadConfig(rate=cfg.rate_per_device, num_requests=cfg.num_requests, input=cfg.input,
                            output=cfg.output, seed=cfg.seed + k)  # fmt: skip
        reqs = generate(wl)
        frames.append(pd.DataFrame({"device": k, "request": np.arange(len(reqs)),
                                    "arrival_s": np.round([r.arrival for r in reqs], 3),
                                    "input_len": [r.prompt_len for r in reqs],
                                    "output_len": [r.output_len for r in reqs]}))  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    if cfg.escalate is not None:
        df["escalated"] = np.random.default_rng([cfg.seed, 30]).random(len(df)) < cfg.escalate
    else:
        df["escalated"] = df.input_len.to_numpy() > cfg.escalate_above
    return df


def _replay(sc: Scenario, arrival_s: np.ndarray, ins: np.ndarray, outs: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """Serve these requests (arrivals in s, sorted) on `sc`'s deployment: their records, in the order given, times
    from the same origin as `arrival_s`, and the run's summary."""
    from servesim.api import replay

    res = replay(sc, arrival_s, ins, outs)
    rec = res.requests.sort_values("request_id").reset_index(drop=True)
    t0 = round(float(arrival_s[0]) * 1e3) / 1e3
    for col in ("arrival_s", "first_token_s", "finish_s"):
        rec[col] = rec[col] + t0
    return rec, res.summary()


def simulate_cascade(cfg: CascadeConfig) -> tuple[dict, pd.DataFrame]:
    """(summary, one row per request) of the cascade, priced by simulation (module docstring)."""
    from servesim.hardware import get_gpu

    check(cfg)
    df = streams(cfg)
    device = get_gpu(cfg.device, cfg.gpu_file)
    n = len(df)
    df["device_j"] = 0.0
    df["device_first_token_s"] = df["device_finish_s"] = np.nan
    df["sent_s"] = df.arrival_s  # when an escalated request leaves the device
    drain_h = []
    for k in range(cfg.devices):
        mine = df.index[(df.device == k) & ((cfg.when == "after") | ~df.escalated)]
        if not len(mine):
            continue
        rec, s = _replay(device_scenario(cfg), df.arrival_s[mine].to_numpy(), df.input_len[mine].to_numpy(),
                         df.output_len[mine].to_numpy())  # fmt: skip
        df.loc[mine, "device_j"] = rec.energy_j.to_numpy()
        df.loc[mine, "device_first_token_s"] = rec.first_token_s.to_numpy()
        df.loc[mine, "device_finish_s"] = rec.finish_s.to_numpy()
        if "battery" in s and s["battery"]["hours_to_drain"] is not None:
            drain_h.append(s["battery"]["hours_to_drain"])
    if cfg.when == "after":
        df.loc[df.escalated, "sent_s"] = df.device_finish_s[df.escalated]
    up = df.escalated.to_numpy()
    cloud_usd = gpu_hours = 0.0
    df["cloud_arrival_s"] = df["cloud_first_token_s"] = df["cloud_finish_s"] = np.nan
    if up.any():
        arrive = np.round((df.sent_s + cfg.up_s(df.input_len)).to_numpy()[up], 3)
        order = np.argsort(arrive, kind="stable")
        idx = df.index[up][order]
        rec, s = _replay(cloud_scenario(cfg), arrive[order], df.input_len[idx].to_numpy(),
                         df.output_len[idx].to_numpy())  # fmt: skip
        df.loc[idx, "cloud_arrival_s"] = rec.arrival_s.to_numpy()
        df.loc[idx, "cloud_first_token_s"] = rec.first_token_s.to_numpy()
        df.loc[idx, "cloud_finish_s"] = rec.finish_s.to_numpy()
        cloud_usd, gpu_hours = s["cost"]["total_usd"], s["cost"]["gpu_hours"]
    first = np.where(up, df.cloud_first_token_s + cfg.down_s(1), df.device_first_token_s)
    last = np.where(up, df.cloud_finish_s + cfg.down_s(df.output_len), df.device_finish_s)
    df["ttft_s"] = first - df.arrival_s
    df["e2e_s"] = last - df.arrival_s
    df["network_s"] = np.where(up, cfg.up_s(df.input_len) + cfg.down_s(df.output_len), 0.0)
    battery_j = device.battery_wh * 3600 if device.battery_wh else None
    df["battery_pct"] = df.device_j / battery_j * 100 if battery_j else np.nan
    served = int(up.sum())
    df["cloud_usd"] = np.where(up, cloud_usd / served if served else 0.0, 0.0)
    done = df[np.isfinite(df.e2e_s)]
    cloud_tokens = int((df.input_len[up] + df.output_len[up]).sum())
    stats = lambda x: {"mean": float(np.mean(x)) * 1e3, "p50": float(np.percentile(x, 50)) * 1e3,  # noqa: E731
                       "p99": float(np.percentile(x, 99)) * 1e3} if len(x) else None  # fmt: skip
    summary = {
        "requests": n,
        "completed": len(done),
        "escalated": served,
        "escalated_fraction": served / n,
        "when": cfg.when,
        "e2e_ms": stats(done.e2e_s),
        "ttft_ms": stats(done.ttft_s),
        "device": {
            "name": device.name, "model": cfg.device_model, "devices": cfg.devices,
            "j_per_request": float(df.device_j.mean()),
            "wasted_j_per_request": float(df.device_j[up].sum() / n) if cfg.when == "after" else 0.0,
            "battery_wh": device.battery_wh,
            "battery_pct_per_request": float(df.battery_pct.mean()) if battery_j else None,
            "hours_to_drain": float(np.mean(drain_h)) if drain_h else None,
        },
        "cloud": {
            "gpu": cfg.cloud_gpu, "model": cfg.cloud_model, "tp": cfg.cloud_tp, "replicas": cfg.cloud_replicas,
            "gpu_hours": gpu_hours, "total_usd": cloud_usd,
            "usd_per_request": cloud_usd / n,
            "usd_per_escalated_request": cloud_usd / served if served else None,
            "usd_per_m_tokens": cloud_usd / cloud_tokens * 1e6 if cloud_tokens else None,
        },
        "network": {"rtt_ms": cfg.rtt_ms, "uplink_mbps": cfg.uplink_mbps, "downlink_mbps": cfg.downlink_mbps,
                    "bytes_per_token": cfg.bytes_per_token,
                    "ms_per_escalated_request": float(df.network_s[up].mean()) * 1e3 if served else None},
    }  # fmt: skip
    return summary, df


def cascade_table(s: dict):
    """The cascade's summary as a terminal table (rich)."""
    from rich.table import Table

    fmt = lambda v, d=2: "-" if v is None else f"{v:,.{d}f}"  # noqa: E731
    d, c, net = s["device"], s["cloud"], s["network"]
    t = Table(title=f"edge-cloud cascade ({s['when']}: {s['escalated']} of {s['requests']} requests escalated)",
              show_header=False, title_justify="left")  # fmt: skip
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("Devices x model", f"{d['devices']} x {d['name']} / {d['model']}")
    t.add_row("Cloud pool", f"{c['replicas']} x {c['gpu']} TP{c['tp']} / {c['model']}")
    t.add_row("Network (RTT ms, up / down Mbit/s)", f"{net['rtt_ms']:g}, {net['uplink_mbps']:g} / "
              f"{net['downlink_mbps']:g}")  # fmt: skip
    t.add_section()
    for key, name in (("e2e_ms", "End-to-end latency"), ("ttft_ms", "TTFT")):
        v = s[key] or {}
        t.add_row(f"{name} mean / P50 / P99 (ms)", " / ".join(fmt(v.get(q), 1) for q in ("mean", "p50", "p99")))
    t.add_row("Network per escalated request (ms)", fmt(net["ms_per_escalated_request"], 1))
    t.add_section()
    t.add_row("Device energy per request (J)", fmt(d["j_per_request"], 2))
    if s["when"] == "after":
        t.add_row("  of it wasted on escalated requests (J)", fmt(d["wasted_j_per_request"], 2))
    if d["battery_wh"] is not None:
        t.add_row("Battery per request (%)", fmt(d["battery_pct_per_request"], 4))
        t.add_row("Hours to drain at this rate", fmt(d["hours_to_drain"]))
    t.add_section()
    t.add_row("Cloud GPU-hours / USD", f"{fmt(c['gpu_hours'], 3)} / {fmt(c['total_usd'], 4)}")
    t.add_row("Cloud USD per request / per escalated one", f"{fmt(c['usd_per_request'], 5)} / "
              f"{fmt(c['usd_per_escalated_request'], 5)}")  # fmt: skip
    t.add_row("Cloud USD per M tokens served", fmt(c["usd_per_m_tokens"], 2))
    return t

"""What a run costs a battery-powered device: energy per output token, tokens per joule, time to drain.

Everything the device drew counts, busy and idle (a battery pays for the gaps between requests
too), over the run's duration; each replica is one device with its own battery of the catalog's
`battery_wh`. The draining time is at the run's request rate: the battery's energy over the
device's mean power. The radio, the display and the rest of the phone are not counted: this is
the SoC's draw as the power model gives it (`perf/energy.py`).
"""

from __future__ import annotations

from servesim.hardware import GPUSpec


def battery_summary(gpu: GPUSpec, energy: dict, devices: int, completed: int, output_tokens: int,
                    duration_s: float) -> dict | None:  # fmt: skip
    """The battery figures of a run on `devices` of `gpu` (None without a battery), from its `energy` summary
    (`metrics.energy.energy_cost_summary`'s, whose busy and idle joules are the devices')."""
    if gpu.battery_wh is None:
        return None
    joules = energy["gpu_busy_j"] + energy["gpu_idle_j"]
    battery_j = gpu.battery_wh * 3600
    watts = joules / duration_s / devices if duration_s and devices else 0.0  # mean, per device
    per_request = joules / completed if completed else None
    return {
        "battery_wh": gpu.battery_wh,
        "devices": devices,
        "device_j": joules,
        "avg_power_per_device_w": watts,
        "j_per_output_token": joules / output_tokens if output_tokens else None,
        "output_tokens_per_j": output_tokens / joules if joules else None,
        "j_per_request": per_request,
        "battery_pct_per_request": per_request / battery_j * 100 if per_request is not None else None,
        "hours_to_drain": battery_j / watts / 3600 if watts else None,
    }

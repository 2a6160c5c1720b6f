"""Measured GPU profiles: loading, checking and interpolating the tables `servesim profile` writes.

Built-in profiles live in `perf/profiles/<gpu>/`; `$SERVESIM_PROFILE_DIR/<gpu>/` adds or
replaces them. Interpolation is linear (in token count for GEMMs, which tracks their
tile-wise cost better than log space), with linear extrapolation past the last point.
Tables are made non-decreasing in every size (a running maximum), which removes
noise-level dips such as a GEMM timing 1 us faster at M=2 than at M=1: more work never
predicts less time.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from servesim.errors import ServesimError

FORMAT_VERSION = 1
BUILTIN = Path(__file__).with_name("profiles")
PROFILE_ENV = "SERVESIM_PROFILE_DIR"
TABLES = {
    "gemm.csv": ["n", "k", "m", "seconds"],
    "attention_prefill.csv": ["hq", "hkv", "d", "q_len", "ctx", "seconds"],
    "attention_decode.csv": ["hq", "hkv", "d", "batch", "ctx", "seconds"],
    "elementwise.csv": ["op", "tokens", "width", "bytes", "seconds"],
}
OPTIONAL = {"power.csv": ["state", "watts_mean"], "calibration.csv": ["name", "value"]}
# bytes each elementwise kernel moves per token and unit of width (bf16), as the profiler counts them
EW_BYTES_PER_ELEM = {"rms_norm": 4, "add": 6, "embedding": 4, "silu_mul": 6, "rope": 4, "write_kv": 4,
                     "write_kv_decode": 4, "concat": 8}  # fmt: skip


def interp(x, xp: np.ndarray, fp: np.ndarray):
    """Linear interpolation; flat below the first point, extrapolated linearly past the last."""
    return Curve(xp, fp)(x)


class Curve:
    """A measured curve: linear between points, flat before the first, rising past the last."""

    __slots__ = ("xs", "ys", "xa", "ya", "slope")

    def __init__(self, xs, ys):
        self.xa, self.ya = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        self.xs, self.ys = self.xa.tolist(), self.ya.tolist()
        n = len(self.xs)
        self.slope = max((self.ys[-1] - self.ys[-2]) / (self.xs[-1] - self.xs[-2]), 0.0) if n > 1 else 0.0

    def __call__(self, x):
        if isinstance(x, np.ndarray):
            y = np.interp(x, self.xa, self.ya)
            return np.where(x > self.xs[-1], self.ys[-1] + self.slope * (x - self.xs[-1]), y)
        xs, ys = self.xs, self.ys  # scalar path: the simulator's hot loop
        if x >= xs[-1]:
            return ys[-1] + self.slope * (x - xs[-1])
        i = bisect_right(xs, x)
        if i == 0:
            return ys[0]
        x0, y0 = xs[i - 1], ys[i - 1]
        return y0 + (ys[i] - y0) * (x - x0) / (xs[i] - x0)


class Grid2D:
    """Times over two keys: a measured curve over the second key for each value of the first."""

    def __init__(self, rows: dict[float, Curve]):
        self.rows = rows
        self.keys = sorted(rows)
        self._brackets: dict = {}

    def bracket(self, a: float) -> tuple[Curve, Curve | None, float]:
        """The row curves that value `a` of the first key interpolates between, and the weight of the second."""
        hit = self._brackets.get(a)
        if hit is None:
            keys = self.keys
            if a in self.rows:  # a measured row: no interpolation between rows
                hit = (self.rows[a], None, 0.0)
            elif len(keys) == 1 or a <= keys[0]:
                hit = (self.rows[keys[0]], None, 0.0)
            else:  # past the last key: extrapolate from the last two rows
                i = min(bisect_left(keys, a), len(keys) - 1)
                a0, a1 = keys[i - 1], keys[i]
                hit = (self.rows[a0], self.rows[a1], (a - a0) / (a1 - a0))
            self._brackets[a] = hit
        return hit

    def __call__(self, a: float, b):
        """Linear in both keys; flat below the first key, extrapolated past the last."""
        c0, c1, w = self.bracket(a)
        t0 = c0(b)
        return t0 if c1 is None else t0 + (c1(b) - t0) * w


def _grid(df: pd.DataFrame, a: str, b: str) -> Grid2D:
    """Rows by `a`, each non-decreasing in `b` and no faster than the row before it."""
    rows, prev = {}, None
    for key, part in sorted(df.groupby(a), key=lambda kv: kv[0]):
        part = part.sort_values(b)
        xs = part[b].to_numpy(float)
        ts = np.maximum.accumulate(part.seconds.to_numpy(float))
        if prev is not None:
            ts = np.maximum.accumulate(np.maximum(ts, prev(xs)))
        rows[float(key)] = prev = Curve(xs, ts)
    return Grid2D(rows)


@dataclass(eq=False)  # hashed by identity: one loaded profile, cached fits
class Profile:
    path: Path
    meta: dict
    gemm: dict[tuple[int, int], Curve]
    prefill: dict[tuple[int, int, int], Grid2D]
    decode: dict[tuple[int, int, int], Grid2D]
    elementwise: dict[str, Grid2D]  # op -> seconds over (width, tokens)
    power: dict[str, float]
    calibration: dict[str, float]
    raw: dict[str, pd.DataFrame] = field(repr=False)

    @property
    def gpu(self) -> str:
        return self.meta.get("gpu", self.path.name)

    def gemm_time(self, rows, n: int, k: int):
        curve = self.gemm.get((n, k))
        return (
            None if curve is None else curve(np.maximum(rows, 1.0) if isinstance(rows, np.ndarray) else max(rows, 1.0))
        )

    def elementwise_time(self, op: str, tokens, width: int):
        return self.elementwise[op](width, tokens)


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ServesimError(f"profile table {path} is corrupt ({type(e).__name__}); re-run servesim profile") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ServesimError(f"profile table {path} lacks columns {', '.join(missing)}; re-run servesim profile")
    numeric = [c for c in columns if c not in ("op", "state")]
    bad = df[numeric].apply(pd.to_numeric, errors="coerce").isna().any(axis=1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise ServesimError(f"profile table {path} line {line}: a value is not a number")
    if (df.seconds <= 0).any():
        raise ServesimError(f"profile table {path}: times must be positive")
    if df.empty:
        raise ServesimError(f"profile table {path} is empty; re-run servesim profile")
    return df


@cache
def load_profile(path: str | Path) -> Profile:
    """Load and check a profile folder; any missing or corrupt part is one clear error."""
    p = Path(path)
    if not p.is_dir():
        raise ServesimError(f"profile folder {p} not found")
    meta_path = p / "meta.json"
    if not meta_path.is_file():
        raise ServesimError(f"profile {p} is incomplete: meta.json missing; re-run servesim profile")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ServesimError(f"profile {p}: meta.json is not valid JSON ({e})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ServesimError(
            f"profile {p} has format {meta.get('format_version')}, this servesim reads {FORMAT_VERSION}; re-profile"
        )
    raw = {}
    for name, cols in TABLES.items():
        if not (p / name).is_file():
            raise ServesimError(f"profile {p} is incomplete: {name} missing; re-run servesim profile")
        raw[name] = _read_table(p / name, cols)
    for name, cols in OPTIONAL.items():
        if (p / name).is_file():
            raw[name] = pd.read_csv(p / name)
            if any(c not in raw[name].columns for c in cols):
                raise ServesimError(f"profile table {p / name} lacks columns {', '.join(cols)}; re-profile")
    g = raw["gemm.csv"]
    gemm = {}
    for (n, k), part in g.groupby(["n", "k"]):
        part = part.sort_values("m")
        gemm[(int(n), int(k))] = Curve(part.m.to_numpy(float), np.maximum.accumulate(part.seconds.to_numpy(float)))
    layouts = lambda df: df.groupby(["hq", "hkv", "d"])  # noqa: E731
    prefill = {tuple(int(x) for x in key): _grid(part, "q_len", "ctx") for key, part in
               layouts(raw["attention_prefill.csv"])}  # fmt: skip
    decode = {tuple(int(x) for x in key): _grid(part, "batch", "ctx") for key, part in
              layouts(raw["attention_decode.csv"])}  # fmt: skip
    ew = raw["elementwise.csv"].groupby(["op", "width", "tokens"], as_index=False).seconds.median()
    elementwise = {op: _grid(part, "width", "tokens") for op, part in ew.groupby("op")}
    power = {}
    if "power.csv" in raw:
        power = {r.state: float(r.watts_mean) for r in raw["power.csv"].itertuples()}
    calibration = {}
    if "calibration.csv" in raw:
        calibration = {r.name: float(r.value) for r in raw["calibration.csv"].itertuples()}
    return Profile(p, meta, gemm, prefill, decode, elementwise, power, calibration, raw)


def profile_dirs() -> list[Path]:
    """Folders searched for `<gpu>/` profiles, user folder first."""
    dirs = []
    if os.environ.get(PROFILE_ENV):
        dirs.append(Path(os.environ[PROFILE_ENV]))
    dirs.append(BUILTIN)
    return dirs


def find_profile(gpu: str) -> Path | None:
    for d in profile_dirs():
        if (d / gpu / "meta.json").is_file():
            return d / gpu
    return None


def profiled_gpus() -> list[str]:
    return sorted({p.parent.name for d in profile_dirs() if d.is_dir() for p in d.glob("*/meta.json")})

"""Measured GPU profiles: loading, checking and interpolating the tables `servesim profile` writes.

Built-in profiles live in `perf/profiles/<gpu>/`; `$SERVESIM_PROFILE_DIR/<gpu>/` adds or
replaces them. Interpolation is linear (in token count for GEMMs, which tracks their
tile-wise cost better than log space), with linear extrapolation past the last point.
Tables are made non-decreasing in every size (a running maximum), which removes
noise-level dips such as a GEMM timing 1 us faster at M=2 than at M=1: more work never
predicts less time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import statistics
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from servesim.errors import ServesimError
from servesim.records import Records

FORMAT_VERSION = 1
BUILTIN = Path(__file__).with_name("profiles")
PROFILE_ENV = "SERVESIM_PROFILE_DIR"
TABLES = {
    "gemm.csv": ["n", "k", "m", "seconds"],
    "attention_prefill.csv": ["hq", "hkv", "d", "q_len", "ctx", "seconds"],
    "attention_decode.csv": ["hq", "hkv", "d", "batch", "ctx", "seconds"],
    "elementwise.csv": ["op", "tokens", "width", "bytes", "seconds"],
}
# what `servesim profile --sections` can measure
SECTIONS = ("gemm", "attention", "elementwise", "calibration", "power", "collectives", "fp8", "fp8_attention", "moe",
            "mla", "long_prefill")  # fmt: skip
MOE_COLUMNS = ["op", "hidden", "width", "experts", "tokens", "seconds"]
MLA_KEY = ["hq", "latent", "rope", "nope", "v"]  # an MLA layer's attention on one GPU: its query heads and widths
OPTIONAL = {
    "power.csv": ["state", "watts_mean"], "calibration.csv": ["name", "value"],
    "gemm_fp8.csv": TABLES["gemm.csv"], "attention_decode_fp8.csv": TABLES["attention_decode.csv"],
    "elementwise_fp8.csv": TABLES["elementwise.csv"], "collectives.csv": ["op", "world", "bytes", "seconds"],
    "sm_share.csv": ["sms", "op", "seconds"],
    "moe.csv": MOE_COLUMNS, "moe_fp8.csv": MOE_COLUMNS,
    "attention_prefill_long.csv": TABLES["attention_prefill.csv"],
    "attention_decode_mla.csv": MLA_KEY + ["batch", "ctx", "seconds"],
    "attention_prefill_mla.csv": MLA_KEY + ["q_len", "ctx", "seconds"],
}  # fmt: skip
# bytes each elementwise kernel moves per token and unit of width (bf16), as the profiler counts them
EW_BYTES_PER_ELEM = {"rms_norm": 4, "add": 6, "embedding": 4, "silu_mul": 6, "rope": 4, "write_kv": 4,
                     "write_kv_decode": 4, "concat": 8,
                     "write_kv_fp8": 3, "write_kv_decode_fp8": 3, "dequant_kv_fp8": 3}  # fmt: skip


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


def _groups(t: Records, keys: list[str]):
    """(key values, rows) for each distinct combination of `keys` in table t, in sorted order."""
    cols = [t[k] for k in keys]
    order = np.lexsort(cols[::-1])
    sorted_cols = [c[order] for c in cols]
    change = np.zeros(len(order), dtype=bool)
    change[0] = True
    for c in sorted_cols:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    for a, b in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        yield tuple(c[a] for c in sorted_cols), order[a:b]


def _grid(t: Records, a: str, b: str) -> Grid2D:
    """Rows by `a`, each non-decreasing in `b` and no faster than the row before it."""
    rows, prev = {}, None
    for (key,), idx in _groups(t, [a]):
        idx = idx[np.argsort(t[b][idx], kind="stable")]
        xs = t[b][idx].astype(float)
        ts = np.maximum.accumulate(t["seconds"][idx].astype(float))
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
    gemm_fp8: dict[tuple[int, int], Curve]  # empty where the profile has no fp8 section
    decode_fp8: dict[tuple[int, int, int], Grid2D]  # decode attention over an fp8 KV cache
    collectives: dict[tuple[str, int], Curve]  # (op, GPUs) -> seconds over bytes, CUDA-graph timed
    # MoE layers as grouped kernels: ("experts", hidden, width, local experts) -> seconds over routed copies, and
    # ("route", 0, top_k, experts) -> seconds over tokens (bf16 in `moe`, fp8 experts in `moe_fp8`)
    moe: dict[tuple[str, int, int, int], Curve]
    moe_fp8: dict[tuple[str, int, int, int], Curve]
    # MLA attention from its projections' outputs to its heads' outputs (cache write, absorption or decompression,
    # the attention kernel), keyed by MLA_KEY: decodes over (batch, context), prompt chunks over (length, context)
    mla_decode: dict[tuple[int, ...], Grid2D]
    mla_prefill: dict[tuple[int, ...], Grid2D]
    elementwise: dict[str, Grid2D]  # op -> seconds over (width, tokens)
    power: dict[str, float]
    calibration: dict[str, float]
    raw: dict[str, Records] = field(repr=False)
    digest: str = ""  # of the tables' contents

    @property
    def gpu(self) -> str:
        return self.meta.get("gpu", self.path.name)

    def gemm_time(self, rows, n: int, k: int, fp8: bool = False):
        curve = (self.gemm_fp8 if fp8 else self.gemm).get((n, k))
        return (
            None if curve is None else curve(np.maximum(rows, 1.0) if isinstance(rows, np.ndarray) else max(rows, 1.0))
        )

    def elementwise_time(self, op: str, tokens, width: int):
        return self.elementwise[op](width, tokens)

    @property
    def prefill_max(self) -> dict[tuple[int, int, int], int]:
        """The longest measured prefill chunk per head layout."""
        return {heads: int(grid.keys[-1]) for heads, grid in self.prefill.items()}


def _read_table(path: Path, columns: list[str], text_columns: tuple[str, ...] = ("op", "state", "name")) -> Records:
    if not set(columns) & set(text_columns):  # all numbers: numpy's reader, the checks below only if it fails
        try:
            with path.open() as f:
                header = [h.strip() for h in f.readline().split(",")]
                data = np.loadtxt(f, delimiter=",", ndmin=2)
            if set(columns) <= set(header) and data.shape[0] and data.shape[1] == len(header):
                table = Records({name: data[:, i] for i, name in enumerate(header)})
                if (table.seconds > 0).all():
                    return table
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ServesimError(f"profile table {path} is corrupt ({type(e).__name__}); re-run servesim profile") from None
    header = [h.strip() for h in rows[0]] if rows else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise ServesimError(f"profile table {path} lacks columns {', '.join(missing)}; re-run servesim profile")
    body = [r for r in rows[1:] if r]
    if not body:
        raise ServesimError(f"profile table {path} is empty; re-run servesim profile")
    for line, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ServesimError(f"profile table {path} line {line} has {len(r)} fields, not {len(header)}; re-profile")
    table = Records()
    for i, name in enumerate(header):
        values = [r[i].strip() for r in body]
        if name in text_columns:
            table[name] = np.array(values)
            continue
        try:
            table[name] = np.array(values, dtype=float)
        except ValueError:
            line = next(j for j, v in enumerate(values, start=2) if not _is_number(v))
            raise ServesimError(f"profile table {path} line {line}: a value is not a number") from None
    if "seconds" in table and ((table.seconds <= 0) | np.isnan(table.seconds)).any():
        raise ServesimError(f"profile table {path}: times must be positive")
    return table


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


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
    digest = hashlib.sha1()
    for name, cols in TABLES.items():
        if not (p / name).is_file():
            raise ServesimError(f"profile {p} is incomplete: {name} missing; re-run servesim profile")
        raw[name] = _read_table(p / name, cols)
        digest.update((p / name).read_bytes())
    for name, cols in OPTIONAL.items():
        if (p / name).is_file():
            raw[name] = _read_table(p / name, cols)
    gemm, gemm_fp8 = _gemms(raw["gemm.csv"]), _gemms(raw.get("gemm_fp8.csv"))
    # prompts past the main grid are measured on their own
    prefill = _attention(_stacked(raw, "attention_prefill.csv", "attention_prefill_long.csv"), "q_len")
    # a head layout measured only past the main grid has no short chunk to interpolate from (extrapolating its
    # 16k-token chunk down to a 512-token one priced it ~1000x too slow): the fitted roofline prices it instead
    short = {tuple(int(x) for x in k) for k, _ in _groups(raw["attention_prefill.csv"], ["hq", "hkv", "d"])}
    prefill = {heads: grid for heads, grid in prefill.items() if heads in short}
    decode = _attention(raw["attention_decode.csv"], "batch")
    decode_fp8 = _attention(raw.get("attention_decode_fp8.csv"), "batch")
    ew = _stacked(raw, "elementwise.csv", "elementwise_fp8.csv")
    medians: dict = defaultdict(list)  # repeated measurements of one shape: their median
    for key, idx in _groups(ew, ["op", "width", "tokens"]):
        medians[key[0]].append((float(key[1]), float(key[2]), statistics.median(ew.seconds[idx].tolist())))
    elementwise = {}
    for op, rows in medians.items():
        width, tokens, seconds = (np.array(c) for c in zip(*rows, strict=True))
        elementwise[str(op)] = _grid(Records(width=width, tokens=tokens, seconds=seconds), "width", "tokens")
    power = {}
    if "power.csv" in raw:
        power = {str(s): float(w) for s, w in zip(raw["power.csv"].state, raw["power.csv"].watts_mean, strict=True)}
    calibration = {}
    if "calibration.csv" in raw:
        cal = raw["calibration.csv"]
        calibration = {str(n): float(v) for n, v in zip(cal.name, cal.value, strict=True)}
    collectives = {}
    if "collectives.csv" in raw:  # (CUDA-graph timed; older profiles' host-timed collectives_<n>.csv are not read)
        c = raw["collectives.csv"]
        for (op, world), idx in _groups(c, ["op", "world"]):
            idx = idx[np.argsort(c.bytes[idx], kind="stable")]
            collectives[(str(op), int(world))] = Curve(c.bytes[idx], np.maximum.accumulate(c.seconds[idx]))
    mla_decode = _attention(raw.get("attention_decode_mla.csv"), "batch", MLA_KEY)
    mla_prefill = _attention(raw.get("attention_prefill_mla.csv"), "q_len", MLA_KEY)
    return Profile(p, meta, gemm, prefill, decode, gemm_fp8, decode_fp8, collectives, _moe(raw.get("moe.csv")),
                   _moe(raw.get("moe_fp8.csv")), mla_decode, mla_prefill, elementwise, power, calibration, raw,
                   digest.hexdigest())  # fmt: skip


SPIKE = 1.25  # a GEMM point this much slower than the next larger M is a one-M kernel choice (_gemms)


def _gemms(g: Records | None) -> dict[tuple[int, int], Curve]:
    """A curve over token count per (N, K) shape, never falling as M grows (more rows never take less time
    in the simulator). A point slower than the next larger M by more than SPIKE is cuBLAS choosing a slow kernel
    at that M alone (Llama's 28672x4096 gate-up GEMM takes 2x longer at M = 448 than at 512 on both Hoppers):
    it is left out, rather than carried onto every larger M by the running maximum."""
    gemm = {}
    for (n, k), idx in _groups(g, ["n", "k"]) if g is not None else ():
        idx = idx[np.argsort(g.m[idx], kind="stable")]
        m, t = g.m[idx], g.seconds[idx]
        keep = np.append(t[:-1] <= SPIKE * t[1:], True)
        gemm[(int(n), int(k))] = Curve(m[keep], np.maximum.accumulate(t[keep]))
    return gemm


def _stacked(raw: dict[str, Records], main: str, extra: str) -> Records:
    """Table `main` with the rows of `extra` (same columns) below it, where the profile has that table."""
    if extra not in raw:
        return raw[main]
    return Records({c: np.concatenate([raw[main][c], raw[extra][c]]) for c in TABLES[main]})


def _moe(t: Records | None) -> dict[tuple[str, int, int, int], Curve]:
    """A curve over tokens (routed copies, for `experts`) per MoE kernel and shape, never falling."""
    out = {}
    for (op, h, w, e), idx in _groups(t, ["op", "hidden", "width", "experts"]) if t is not None else ():
        idx = idx[np.argsort(t.tokens[idx], kind="stable")]
        out[(str(op), int(h), int(w), int(e))] = Curve(t.tokens[idx], np.maximum.accumulate(t.seconds[idx]))
    return out


def _attention(t: Records | None, rows: str, key: tuple | list = ("hq", "hkv", "d")) -> dict[tuple[int, ...], Grid2D]:
    """A grid over (`rows`, context) per head layout (`key`: hq, hkv, d; or MLA_KEY)."""
    if t is None:
        return {}
    layouts = _groups(t, list(key))
    return {tuple(int(x) for x in key): _grid(t.select(idx), rows, "ctx") for key, idx in layouts}


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

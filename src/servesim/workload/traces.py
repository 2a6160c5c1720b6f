"""Readers for public LLM-serving traces.

Azure LLM inference 2023 CSV: header `TIMESTAMP,ContextTokens,GeneratedTokens`,
timestamps like `2023-11-16 18:17:03.9799600`.
Mooncake JSONL: one object per line with `timestamp` (ms), `input_length`,
`output_length` and `hash_ids` (one id per 512-token block of the prompt).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servesim.errors import ServesimError
from servesim.files import read_text
from servesim.models.spec import MAX_TOKENS

AZURE_HEADER = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
MAX_SPAN_S = 366 * 86400.0  # a trace spanning more than a year has a stray timestamp


@dataclass
class Trace:
    """Rows of a trace: arrival times (s, first = 0), lengths, optional prefix hashes."""

    timestamps: np.ndarray
    input_lens: np.ndarray
    output_lens: np.ndarray
    hash_ids: list[list[int]] | list[tuple[int, ...]] | None = None

    def __len__(self) -> int:
        return len(self.input_lens)

    def freeze(self) -> None:
        """Make it read-only (it is shared by every run that reads the same file)."""
        for a in (self.timestamps, self.input_lens, self.output_lens):
            a.setflags(write=False)
        if self.hash_ids is not None:
            self.hash_ids = [tuple(h) for h in self.hash_ids]


def _positive_int(text, path: Path, line: int, field: str, least: int = 1, most: float = MAX_TOKENS) -> int:
    if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
        raise ServesimError(f"{path} line {line}: {field} '{text}' is not a whole number")
    try:
        value = int(text)
    except (TypeError, ValueError, OverflowError):
        raise ServesimError(f"{path} line {line}: {field} '{text}' is not a whole number") from None
    if value < least:
        raise ServesimError(f"{path} line {line}: {field} must be at least {least}, not {value}")
    if value > most:
        raise ServesimError(f"{path} line {line}: {field} {value} is more than {most:,.0f}; is the row corrupt?")
    return value


def _arrivals(path: Path, seconds: np.ndarray, lines: list[int] | None = None) -> np.ndarray:
    """Arrival times from the first: refused if a timestamp is missing or the trace spans more than a year."""
    bad = np.flatnonzero(~np.isfinite(seconds))
    if bad.size:
        where = f" line {lines[bad[0]]}" if lines else ""
        raise ServesimError(f"{path}{where}: timestamp missing or not a time")
    t = seconds - seconds.min()
    if t.max() > MAX_SPAN_S:
        k = int(np.argmax(np.abs(seconds - np.median(seconds))))  # the row farthest from the others
        where = f" line {lines[k]}" if lines else ""
        raise ServesimError(f"{path}{where}: the timestamps span {t.max() / 86400:,.0f} days; a stray timestamp?")
    return t


def read_azure(path: Path) -> Trace:
    lines = read_text(path, "trace file").splitlines()
    if not lines or [h.strip() for h in lines[0].split(",")] != AZURE_HEADER:
        raise ServesimError(f"{path} line 1: expected header {','.join(AZURE_HEADER)}")
    stamps, ins, outs, numbers = [], [], [], []
    for no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 3:
            raise ServesimError(f"{path} line {no}: expected 3 comma-separated fields, got {len(parts)}")
        try:
            stamps.append(np.datetime64(parts[0].strip().replace(" ", "T"), "ns"))
        except ValueError:
            raise ServesimError(f"{path} line {no}: bad timestamp '{parts[0]}'") from None
        ins.append(_positive_int(parts[1], path, no, "ContextTokens"))
        outs.append(_positive_int(parts[2], path, no, "GeneratedTokens"))
        numbers.append(no)
    if not ins:
        raise ServesimError(f"{path} holds no requests")
    t = np.array(stamps, dtype="datetime64[ns]")
    nat = np.flatnonzero(np.isnat(t))
    if nat.size:
        raise ServesimError(f"{path} line {numbers[nat[0]]}: timestamp missing or not a time")
    secs = _arrivals(path, (t - t.min()).astype(np.int64) / 1e9, numbers)
    return Trace(secs, np.array(ins), np.array(outs))


def _mooncake_fast(lines: list[str]) -> Trace | None:
    """Every line parsed in one JSON call; None if any line is unusual (the careful reader then says which)."""
    body = [line for line in lines if line.strip()]
    try:
        rows = json.loads("[" + ",".join(body) + "]")
        stamps = np.array([r["timestamp"] for r in rows])
        ins = np.array([r["input_length"] for r in rows])
        outs = np.array([r["output_length"] for r in rows])
        hashes = [r.get("hash_ids", []) for r in rows]
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        return None
    if not rows or any(a.dtype.kind != "i" for a in (stamps, ins, outs)):
        return None
    if any(type(r["input_length"]) is bool or type(r["output_length"]) is bool or type(r["timestamp"]) is bool
           for r in rows):  # (numpy reads true as 1)  # fmt: skip
        return None
    if (stamps < 0).any() or (ins < 1).any() or (outs < 1).any() or not all(type(h) is list for h in hashes):
        return None
    if (ins > MAX_TOKENS).any() or (outs > MAX_TOKENS).any() or np.ptp(stamps) / 1000.0 > MAX_SPAN_S:
        return None  # (the careful reader names the line)
    if any(len(set(h)) != len(h) for h in hashes):
        return None
    flat = [x for h in hashes for x in h]
    if flat and np.array(flat).dtype.kind not in "iU":  # integers (or string ids), as the careful reader allows
        return None
    t = stamps.astype(float) / 1000.0
    return Trace(t - t.min(), ins, outs, hashes)


def _json_rows(path: Path, lines: list[str], fields) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank JSONL line that is an object with these fields; else one
    clear error naming the line."""
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ServesimError(f"{path} line {no}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ServesimError(f"{path} line {no}: expected a JSON object")
        for key in fields:
            if key not in row:
                raise ServesimError(f"{path} line {no}: missing field '{key}'")
        yield no, row


def read_mooncake(path: Path) -> Trace:
    lines = read_text(path, "trace file").splitlines()
    fast = _mooncake_fast(lines)
    if fast is not None:
        return fast
    stamps, ins, outs, hashes, numbers = [], [], [], [], []
    for no, row in _json_rows(path, lines, ("timestamp", "input_length", "output_length")):
        numbers.append(no)
        stamps.append(_positive_int(row["timestamp"], path, no, "timestamp", least=0, most=math.inf))
        ins.append(_positive_int(row["input_length"], path, no, "input_length"))
        outs.append(_positive_int(row["output_length"], path, no, "output_length"))
        h = row.get("hash_ids", [])
        if not isinstance(h, list) or not all(isinstance(x, int | str) for x in h):
            raise ServesimError(f"{path} line {no}: hash_ids must be a list of integers")
        if len(set(h)) != len(h):  # an id names a block and everything before it, so it cannot recur
            raise ServesimError(f"{path} line {no}: hash_ids repeats an id; each block of a prompt needs its own")
        hashes.append(h)
    if not ins:
        raise ServesimError(f"{path} holds no requests")
    t = _arrivals(path, np.array(stamps, dtype=float) / 1000.0, numbers)
    return Trace(t, np.array(ins), np.array(outs), hashes)


def trace_format(path: str | Path, fmt: str = "auto") -> str:
    """The trace's format: as given, else by extension (.csv Azure; .jsonl/.json Mooncake, or sessions when
    the first record has a session_id)."""
    p = Path(path)
    if not p.is_file():
        read_text(p, "trace file")  # says clearly what is there instead: nothing, or a folder
    if fmt != "auto":
        return fmt
    fmt = {".csv": "azure", ".jsonl": "mooncake", ".json": "mooncake"}.get(p.suffix.lower(), "")
    if not fmt:
        raise ServesimError(f"cannot tell the format of {p}; pass --trace-format azure|mooncake|sessions")
    if fmt == "mooncake":
        first = next((line for line in read_text(p, "trace file").splitlines() if line.strip()), "")
        if '"session_id"' in first:
            return "sessions"
    return fmt


_READ: dict[tuple[str, str], Trace] = {}  # the traces this process read, by format and content digest
_KEEP = 4
_KEEP_BYTES = 256 << 20  # a larger trace is not kept: its rows would hold gigabytes after the run


def read_trace(path: str | Path, fmt: str = "auto") -> Trace:
    """Read a trace of single requests (Azure CSV or Mooncake JSONL). A search simulates the same trace many
    times, so the last few traces read (up to 256 MiB each) are kept, read-only, by their content (hashing
    a file costs a few percent of parsing it)."""
    fmt = trace_format(path, fmt)
    if fmt == "sessions":
        raise ServesimError(f"{path} is a sessions trace; its turns are replayed as programs (workload.trace)")
    p = Path(path)
    parse = read_azure if fmt == "azure" else read_mooncake
    if p.stat().st_size > _KEEP_BYTES:  # (trace_format found it a file)
        return parse(p)
    try:
        with p.open("rb") as f:
            key = (fmt, hashlib.file_digest(f, "blake2b").hexdigest())
    except OSError:
        read_text(p, "trace file")  # the clear message
        raise
    trace = _READ.get(key)
    if trace is None:
        trace = parse(p)
        trace.freeze()
        if len(_READ) >= _KEEP:
            del _READ[next(iter(_READ))]
        _READ[key] = trace
    return trace


def forget_traces() -> None:
    """Drop the traces `read_trace` keeps (the next read parses its file again)."""
    _READ.clear()


SESSION_FIELDS = ("session_id", "turn", "input_length", "output_length")


def read_sessions(path: str | Path) -> list[list[dict]]:
    """A JSONL of conversation turns, one per line: session_id, turn, input_length (the whole prompt),
    output_length, and optionally timestamp (ms, as Mooncake's; the first turn's is required) and delay_s
    (think time after the turn before). Sessions in order of their first turn, turns in order."""
    p = Path(path)
    sessions: dict = {}
    for no, row in _json_rows(p, read_text(p, "trace file").splitlines(), SESSION_FIELDS):
        turn = {"turn": _positive_int(row["turn"], p, no, "turn", least=0),
                "input_length": _positive_int(row["input_length"], p, no, "input_length"),
                "output_length": _positive_int(row["output_length"], p, no, "output_length"),
                "timestamp": None, "delay_s": 0.0}  # fmt: skip
        if "timestamp" in row:
            turn["timestamp"] = _positive_int(row["timestamp"], p, no, "timestamp", least=0, most=math.inf) / 1000.0
        if "delay_s" in row:
            d = row["delay_s"]
            if isinstance(d, bool) or not isinstance(d, int | float) or not 0 <= d <= MAX_SPAN_S:
                raise ServesimError(f"{p} line {no}: delay_s must be a number of seconds from 0 to a year, not {d!r}")
            turn["delay_s"] = float(d)
        sessions.setdefault(row["session_id"], []).append((turn["turn"], no, turn))
    out = []
    for sid, turns in sessions.items():
        turns.sort(key=lambda x: x[0])
        for (a, _, _), (b, no, _) in zip(turns, turns[1:], strict=False):
            if a == b:
                raise ServesimError(f"{p} line {no}: session {sid!r} has turn {b} twice")
        if turns[0][2]["timestamp"] is None:
            raise ServesimError(f"{p} line {turns[0][1]}: session {sid!r}'s first turn needs a timestamp (ms)")
        out.append([t for _, _, t in turns])
    if not out:
        raise ServesimError(f"{p} holds no sessions")
    out.sort(key=lambda s: s[0]["timestamp"])
    return out

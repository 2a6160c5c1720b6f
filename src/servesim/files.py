"""Reading and writing user files: a missing, unreadable or unwritable path is one clear error."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from servesim.errors import ServesimError


def read_text(path: str | Path, what: str) -> str:
    """The file's text; one clear line if it is missing, a folder, unreadable or not UTF-8 text."""
    p = Path(path)
    if not p.exists():
        raise ServesimError(f"{what} {p} not found")
    if not p.is_file():
        raise ServesimError(f"{what} {p} is not a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ServesimError(f"{what} {p} is not UTF-8 text (is it a binary or compressed file?)") from None
    except OSError as e:
        raise ServesimError(f"{what} {p} cannot be read: {e.strerror}") from None


def read_structured(path: str | Path, what: str) -> dict:
    """Parse a .toml or .json file holding a table; `what` names it in errors ("scenario file", "GPU file")."""
    p = Path(path)
    text = read_text(p, what)
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ServesimError(f"{what} {p} is not valid JSON: {e}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ServesimError(f"{what} {p} is not valid TOML: {e}") from None
    if not isinstance(data, dict):
        raise ServesimError(f"{what} {p} must hold a table of settings (a JSON object), not a {type(data).__name__}")
    return data


def _writable_dir(d: Path, flag: str) -> None:
    probe = d
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ServesimError(f"{flag} {d}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ServesimError(f"{flag} {d}: folder {probe} is not writable")


RUN_OUTPUTS = ("summary.json", "scenario.json", "power.csv", "manifest.json", "requests.parquet", "requests.csv")


def check_output_dir(path: str | Path, flag: str, fresh: bool = False) -> Path:
    """A folder to write results into (made if missing): refuse a file or an unwritable place up front; with
    `fresh`, also a folder that holds an earlier run's results (they would be mixed with, or written over by,
    the new run's)."""
    if not str(path).strip():
        raise ServesimError(f"{flag} is empty; give a folder for the results")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ServesimError(f"{flag} {p} is a file; give a folder for the results")
    if fresh and p.is_dir():
        ours = lambda f: f.name in RUN_OUTPUTS or (f.name.startswith("requests-") and f.suffix == ".parquet")  # noqa: E731
        earlier = sorted(f.name for f in p.iterdir() if ours(f))
        if earlier:
            raise ServesimError(f"{flag} {p} holds an earlier run's results ({', '.join(earlier[:3])}"
                                f"{', ...' if len(earlier) > 3 else ''}); give a new folder or empty it")  # fmt: skip
    _writable_dir(p, flag)
    return p


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_output_file(path: str | Path, flag: str) -> Path:
    """A file to write (its folder made if missing): refuse a folder, an unwritable place, or a results store (a
    SQLite file: `servesim search --store`) up front."""
    if not str(path).strip():
        raise ServesimError(f"{flag} is empty; give a file name")
    p = Path(path)
    if p.is_dir():
        raise ServesimError(f"{flag} {p} is a folder; give a file name")
    if p.is_file() and p.open("rb").read(16) == SQLITE_MAGIC:
        raise ServesimError(f"{flag} {p} is a results store; write elsewhere (a store is never written over)")
    if p.exists() and not os.access(p, os.W_OK):
        raise ServesimError(f"{flag} {p} is not writable")
    _writable_dir(p.parent, flag)
    return p


def distinct_outputs(outputs: list[tuple[str | Path | None, str]], folder: tuple[str | Path | None, str] | None = None,
                     inside: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Refuse two outputs of one command on one path, and a file output onto one of the names (`inside`) the
    command writes into its output `folder`."""
    seen: dict[Path, str] = {}
    for path, flag in outputs:
        if path is None:
            continue
        key = Path(path).resolve()
        if key in seen:
            raise ServesimError(f"{flag} and {seen[key]} name the same file {path}; give each output its own path")
        seen[key] = flag
    if folder and folder[0] is not None:
        d = Path(folder[0]).resolve()
        for key, flag in seen.items():
            if key.parent == d and (key.name in inside or key.name.startswith("requests")):
                raise ServesimError(f"{flag} {key} is a file {folder[1]} writes; put it outside {folder[0]}")

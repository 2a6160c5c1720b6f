"""Reading user files: a missing or unparsable file is one clear error, never a traceback."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from servesim.errors import ServesimError


def read_structured(path: str | Path, what: str) -> dict:
    """Parse a .toml or .json file; `what` names it in errors ("scenario file", "GPU file")."""
    p = Path(path)
    if not p.is_file():
        raise ServesimError(f"{what} {p} not found")
    text = p.read_text()
    if p.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ServesimError(f"{what} {p} is not valid JSON: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ServesimError(f"{what} {p} is not valid TOML: {e}") from None

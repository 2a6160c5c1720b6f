"""The built-in model catalog: Hugging Face configs under short names."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from servesim.errors import ServesimError
from servesim.models.spec import ModelSpec, load_hf_config

_DIR = Path(__file__).with_name("catalog")


def model_names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.json"))


@cache
def _builtin(name: str) -> ModelSpec:
    return load_hf_config(_DIR / f"{name}.json", name=name)


def get_model(name: str) -> ModelSpec:
    """A catalog model by short name, or any config.json path / model directory."""
    key = name.strip().lower()
    if key in model_names():
        return _builtin(key)
    p = Path(name)
    if p.suffix == ".json" or p.is_dir():
        return load_hf_config(p)
    raise ServesimError(
        f"unknown model '{name}'; known models: {', '.join(model_names())} "
        "(or pass the path of a Hugging Face config.json)"
    )

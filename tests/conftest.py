import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def shared_trace(name: str) -> Path:
    """A real public trace from ../shared, or skip the test when it is absent."""
    path = SHARED_TRACES / name
    if not path.is_file():
        pytest.skip(f"shared trace {name} not present")
    return path


@pytest.fixture(autouse=True)
def _no_user_gpu_file(monkeypatch):
    monkeypatch.delenv("SERVESIM_GPU_FILE", raising=False)
    os.environ.pop("SERVESIM_GPU_FILE", None)

"""servesim: simulate and plan LLM inference serving."""

from servesim.api import Result, simulate
from servesim.config import SLO, EngineConfig, LengthDist, Scenario, WorkloadConfig
from servesim.errors import ServesimError

__version__ = "0.1.0"
__all__ = ["SLO", "EngineConfig", "LengthDist", "Result", "Scenario", "ServesimError", "WorkloadConfig", "simulate"]

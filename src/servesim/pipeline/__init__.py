"""Pipeline-parallel training schedules priced on servesim's performance model (`servesim pipeline`)."""

from servesim.pipeline.config import PipelineConfig
from servesim.pipeline.costs import StageCosts
from servesim.pipeline.run import PipelineResult, search_pipeline, simulate_pipeline

__all__ = ["PipelineConfig", "PipelineResult", "StageCosts", "search_pipeline", "simulate_pipeline"]

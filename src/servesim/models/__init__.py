"""Model descriptions: architecture from Hugging Face configs, sizes derived from it."""

from servesim.models.catalog import get_model, model_names
from servesim.models.spec import DTYPE_BYTES, ModelSpec, from_hf_config, load_hf_config

__all__ = ["DTYPE_BYTES", "ModelSpec", "from_hf_config", "get_model", "load_hf_config", "model_names"]

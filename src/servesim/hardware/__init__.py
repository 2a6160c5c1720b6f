"""Hardware descriptions: accelerators and the links between them."""

from servesim.hardware.gpu import GPUSpec, catalog, get_gpu, load_gpu_file

__all__ = ["GPUSpec", "catalog", "get_gpu", "load_gpu_file"]

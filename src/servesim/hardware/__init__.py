"""Hardware descriptions: accelerators and the links between them."""

from servesim.hardware.gpu import GPUSpec, catalog, check_device, get_gpu, load_gpu_file

__all__ = ["GPUSpec", "catalog", "check_device", "get_gpu", "load_gpu_file"]

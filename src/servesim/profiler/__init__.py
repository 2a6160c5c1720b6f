"""GPU profiling and validation (optional extra `servesim[profile]`: PyTorch and a CUDA GPU).

Nothing here is imported by the simulator; it measures the kernels that the profiled
performance model reads back, and validates predictions against real forward passes.
"""

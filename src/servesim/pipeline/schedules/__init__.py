"""Built-in pipeline schedules; importing this package registers them by name."""

from servesim.pipeline.schedules import bfpp, gpipe, interleaved, one_f_one_b, zb_h1, zb_h2, zb_v  # noqa: F401

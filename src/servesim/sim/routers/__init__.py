"""Built-in routers; importing this package registers them by name."""

from servesim.sim.routers import least_requests, least_tokens, prefix_affinity, random, round_robin  # noqa: F401

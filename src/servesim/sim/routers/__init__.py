"""Built-in routers; importing this package registers them by name."""

from servesim.sim.routers import (  # noqa: F401
    least_requests,
    least_tokens,
    power_of_two,
    prefix_affinity,
    random,
    round_robin,
)

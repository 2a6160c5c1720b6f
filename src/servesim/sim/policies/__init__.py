"""Built-in scheduling policies; importing this package registers them by name."""

from servesim.sim.policies import orca, sarathi, sjf, static, vllm  # noqa: F401

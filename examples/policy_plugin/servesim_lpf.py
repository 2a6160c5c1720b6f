"""Longest prompt first: vLLM's scheduling, the waiting queue ordered by prompt length, longest first.

A policy written outside servesim: its package declares it under the `servesim.policies`
entry point group (pyproject.toml), so once installed it is a scheduler like the built-ins:

    pip install -e examples/policy_plugin && servesim run --scheduler lpf
"""

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.queue import KeyedQueue


class LongestPromptFirst(VLLMScheduler):
    name = "lpf"

    def make_queue(self) -> KeyedQueue:
        return KeyedQueue(lambda seq: -seq.prompt_len)

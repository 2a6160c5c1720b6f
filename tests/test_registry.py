import subprocess
import sys

import pytest

from servesim.errors import ServesimError
from servesim.pipeline.schedule import SCHEDULES
from servesim.sim.router import ROUTERS
from servesim.sim.scheduler import SCHEDULERS


@pytest.mark.parametrize("registry", [SCHEDULERS, ROUTERS])
def test_each_builtin_is_named_as_its_module(registry):
    # the CLI's help lists module names without importing them, and a run imports only the module it names
    for module in registry.module_names():
        assert registry.get(module).__module__ == f"{registry.package}.{module}"
    assert set(registry.module_names()) <= set(registry.names())


def test_a_run_imports_only_the_policies_it_uses():
    code = (
        "import sys; from servesim.sim.scheduler import SCHEDULERS; SCHEDULERS.get('sarathi');"
        "print(sorted(m for m in sys.modules if m.startswith('servesim.sim.policies.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['servesim.sim.policies.sarathi', 'servesim.sim.policies.vllm']"  # (it builds on vllm)


def test_names_not_named_as_their_module_are_found_and_unknown_names_refused():
    assert SCHEDULES.get("1f1b").name == "1f1b" and SCHEDULES.get("ZB-H1").name == "zb-h1"
    assert ROUTERS.get("least-tokens").name == "least_tokens"
    with pytest.raises(ServesimError, match="unknown scheduler 'fifo'; known: .*vllm"):
        SCHEDULERS.get("fifo")
    with pytest.raises(ServesimError, match="unknown router 'os'"):  # a module of the package, not a router
        ROUTERS.get("os")

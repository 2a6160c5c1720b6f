import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from servesim import EngineConfig, Scenario, WorkloadConfig, simulate
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


def _install(site: Path, module: str, source: str, entry_points: dict[str, dict[str, str]]) -> None:
    """A distribution as pip leaves it in site-packages: its module, and a dist-info naming its entry points."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in entry_points.items()))


EXAMPLE = Path(__file__).parents[1] / "examples" / "policy_plugin"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """An extra site directory on sys.path; whatever the registries load from it is forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry in (SCHEDULERS, ROUTERS):
        monkeypatch.setattr(registry, "_classes", dict(registry._classes))
    return tmp_path


def test_the_example_plugin_package_gives_a_scheduler_by_its_entry_point(site):
    conf = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    _install(site, "servesim_lpf", (EXAMPLE / "servesim_lpf.py").read_text(), conf["project"]["entry-points"])
    sc = Scenario(engine=EngineConfig(scheduler="lpf", max_num_seqs=1),
                  workload=WorkloadConfig(num_requests=30, rate=float("inf"), arrival="burst", seed=4))  # fmt: skip
    started = simulate(sc).requests.sort_values("first_scheduled_s")
    assert list(started.input_len) == sorted(started.input_len, reverse=True)  # one at a time, longest first
    assert "lpf" in SCHEDULERS.names()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "servesim", "run", "--scheduler", "lpf", "--num-requests", "20",
                          "--json"], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["completed"] == 20


def test_a_router_plugin_and_a_broken_one(site):
    source = ("from servesim.sim.router import Router\n\n\nclass Last(Router):\n    name = 'last'\n\n"
              "    def route(self, req, replicas):\n        return len(replicas) - 1\n")
    points = {"last": "far_router:Last", "broken": "far_router:Missing"}
    _install(site, "far_router", source, {"servesim.routers": points})
    s = simulate(Scenario(replicas=3, router="last", workload=WorkloadConfig(num_requests=30))).summary()
    assert [r["completed"] for r in s["replicas"]] == [0, 0, 30]
    with pytest.raises(ServesimError, match=r"router plugin 'broken' \(far_router:Missing.*failed to load: "
                                            r"AttributeError"):  # fmt: skip
        ROUTERS.get("broken")

"""Policies registered by name: each one small module that registers itself on import.

A policy outside the package is found through its distribution's entry points, the
ecosystem's plugin convention: a package that declares

    [project.entry-points."servesim.policies"]
    lpf = "my_policies.lpf:LongestPromptFirst"

(`servesim.routers` for routers) gives `--scheduler lpf` once installed; the class is
loaded only when a run names it, or when every name is listed (examples/policy_plugin).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from importlib.metadata import entry_points

from servesim.errors import ServesimError


def canonical(name: str) -> str:
    """Registry names use underscores; flags are hyphenated, so `least-tokens` means `least_tokens`."""
    return name.strip().lower().replace("-", "_")


class Registry:
    """Classes by name. The built-ins are the modules of `package`, one each; a run imports only those it
    uses (a built-in named as its module is found by that name), a listing imports them all. Others come
    from the entry points of `group` in installed distributions (plugins)."""

    def __init__(self, kind: str, package: str, group: str | None = None):
        self.kind, self.package, self.group = kind, package, group
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        self._classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        """Every name: the built-ins, installed plugins, and any registered elsewhere."""
        for module in self.module_names():
            importlib.import_module(f"{self.package}.{module}")
        for name in self._plugins():
            self._load(name)
        return sorted(self._classes)

    def module_names(self) -> list[str]:
        """The built-ins' modules, without importing them (for help texts: most built-ins are named so)."""
        return sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(self.package).__path__))

    def get(self, name: str) -> type:
        key = canonical(name)
        cls = self._find(key)
        if cls is None and key.isidentifier() and importlib.util.find_spec(f"{self.package}.{key}") is not None:
            importlib.import_module(f"{self.package}.{key}")  # a built-in named as its module
            cls = self._find(key)
        if cls is None and key in self._plugins():
            cls = self._load(key)
        if cls is None:
            known = self.names()
            cls = self._find(key)
            if cls is None:
                raise ServesimError(f"unknown {self.kind} '{name}'; known: {', '.join(known)}")
        return cls

    def _plugins(self) -> dict:
        """Installed entry points of the group, by canonical name (none where the registry has no group)."""
        if self.group is None:
            return {}
        return {canonical(ep.name): ep for ep in entry_points(group=self.group)}

    def _load(self, key: str) -> type:
        """The plugin's class, registered under its entry point's name; one clear line if it cannot be."""
        ep = self._plugins()[key]
        where = f"{self.kind} plugin '{ep.name}' ({ep.value}, entry point group {self.group})"
        try:
            cls = ep.load()
        except Exception as e:  # a broken plugin is the user's to fix: say which and why, no traceback
            raise ServesimError(f"{where} failed to load: {type(e).__name__}: {e}") from None
        if not isinstance(cls, type) or canonical(getattr(cls, "name", "") or "") != key:
            raise ServesimError(f"{where} must name a class whose `name` is '{ep.name}', not {cls!r}")
        self._classes[cls.name] = cls
        return cls

    def _find(self, key: str) -> type | None:
        return next((c for n, c in self._classes.items() if canonical(n) == key), None)

    def make(self, name: str, *args):
        return self.get(name)(*args)

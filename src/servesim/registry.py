"""Policies registered by name: each one small module that registers itself on import."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from servesim.errors import ServesimError


def canonical(name: str) -> str:
    """Registry names use underscores; flags are hyphenated, so `least-tokens` means `least_tokens`."""
    return name.strip().lower().replace("-", "_")


class Registry:
    """Classes by name. The built-ins are the modules of `package`, one each; a run imports only those it
    uses (a built-in named as its module is found by that name), a listing imports them all."""

    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        self._classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        """Every name: the built-ins and any registered elsewhere."""
        for module in self.module_names():
            importlib.import_module(f"{self.package}.{module}")
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
        if cls is None:
            known = self.names()
            cls = self._find(key)
            if cls is None:
                raise ServesimError(f"unknown {self.kind} '{name}'; known: {', '.join(known)}")
        return cls

    def _find(self, key: str) -> type | None:
        return next((c for n, c in self._classes.items() if canonical(n) == key), None)

    def make(self, name: str, *args):
        return self.get(name)(*args)

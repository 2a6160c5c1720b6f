"""Policies registered by name: each one small module that registers itself on import."""

from __future__ import annotations

import importlib

from servesim.errors import ServesimError


def canonical(name: str) -> str:
    """Registry names use underscores; flags are hyphenated, so `least-tokens` means `least_tokens`."""
    return name.strip().lower().replace("-", "_")


class Registry:
    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package  # the package whose import registers the built-ins
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        self._classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        importlib.import_module(self.package)
        return sorted(self._classes)

    def get(self, name: str) -> type:
        key = canonical(name)
        for known in self.names():
            if canonical(known) == key:
                return self._classes[known]
        raise ServesimError(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")

    def make(self, name: str, *args):
        return self.get(name)(*args)

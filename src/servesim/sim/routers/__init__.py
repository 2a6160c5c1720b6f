"""Built-in routers, one module each; importing this package imports (and so registers) them all, so a new
router is one new file here."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

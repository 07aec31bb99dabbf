"""Package names imported on first use (PEP 562), so that importing a package stays cheap.

The ``ntklc`` command imports the ``validation`` packages before it knows which command runs:
``ntklc --help`` and the light commands must not load NumPy, SciPy, SymPy, Numba, matplotlib
or dask on the way.
"""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, str]):
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazy names.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the module that defines it.

    Returns:
        ``(__getattr__, __dir__)``; ``__getattr__`` imports the defining module on first use
        and caches the value in the package.
    """

    def get(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def names():
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return get, names

"""Sphinx configuration of the ntklc documentation (``make docs``)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "ntklc"
author = "the ntklc authors"
copyright = "2026, the ntklc authors"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sphinxarg.ext",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "ntklc"
autosummary_generate = True
autodoc_default_options = {"members": False}
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
myst_enable_extensions = ["dollarmath"]

# The API reference: every name each package exports (its ``__all__``), one page per
# package, so that a new export appears without editing the docs
# (tests/test_docs.py checks the pages against ``__all__``).
PACKAGES = {
    "rmt": "Gaussian mixtures, their statistics, spectral metrics",
    "ntk": "activations, constants, kernels and their equivalents",
    "solvers": "NTK-LC, knapsack, rank, entropy coding, curvature",
    "nets": "training engine, ternary and quantized networks, data",
    "validation": "experiments, sweeps, figures, the property-testing kit",
}


def write_api_pages(folder: Path) -> None:
    """One autosummary page per package in ``folder``, listing its ``__all__``."""
    import importlib

    folder.mkdir(exist_ok=True)
    for name, summary in PACKAGES.items():
        module = importlib.import_module(name)
        lines = [f"``{name}``: {summary}", "=" * (len(name) + 6 + len(summary)), "",
                 f".. automodule:: {name}", "", f".. currentmodule:: {name}", "",
                 ".. autosummary::", "   :toctree: generated", ""]
        lines += [f"   {export}" for export in sorted(module.__all__)]
        (folder / f"{name}.rst").write_text("\n".join(lines) + "\n")


write_api_pages(Path(__file__).parent / "api")


def _plain_text_docstring(app, what, name, obj, options, lines) -> None:
    """The docstrings write formulas in plain text: |rho| is an absolute value, not a
    reStructuredText substitution. A constant's docstring is its type's (dict, tuple): none."""
    if what in ("data", "attribute") and getattr(obj, "__doc__", None) == type(obj).__doc__:
        lines[:] = []
        return
    lines[:] = [line.replace("|", "\\|") for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_text_docstring)

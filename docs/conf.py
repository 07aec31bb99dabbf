"""Sphinx configuration of the ntklc documentation (``make docs``)."""

import shutil
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
    "ntklc": "the error contract",
    "rmt": "Gaussian mixtures, their statistics, spectral metrics",
    "ntk": "activations, constants, kernels and their equivalents",
    "solvers": "NTK-LC, knapsack, rank, entropy coding, curvature",
    "nets": "training engine, ternary and quantized networks, data",
    "validation": "the most used names of the subpackages below",
    "validation.experiments": "experiments and the registry of sweep tasks",
    "validation.data": "data sources, atomic files, kernels stored as tiles",
    "validation.sweeps": "grids of tasks on processes or dask, cached",
    "validation.report": "figure style, studies, plots, the reproduction report",
    "validation.kit.strategies": "Hypothesis strategies of the property-testing kit",
    "validation.kit.oracles": "slow, trustworthy references of the kit",
    "validation.kit.checks": "ready-made property checks of the kit",
}


def write_api_pages(folder: Path) -> None:
    """One autosummary page per package (or module) in ``folder``, listing its ``__all__``."""
    import importlib

    # Generated each build (git ignores it): a page left from a name no longer exported
    # would be an orphan, which -W turns into an error.
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, summary in PACKAGES.items():
        module = importlib.import_module(name)
        lines = [f"``{name}``: {summary}", "=" * (len(name) + 6 + len(summary)), "",
                 f".. automodule:: {name}", ""]
        if name == "validation":
            # Its names are documented once, on their subpackages' pages (a second page
            # would describe the same objects twice); here each links there.
            lines += [f"* :py:obj:`{export} <{_documented_at(module, export)}>`"
                      for export in sorted(module.__all__)]
        else:
            lines += [f".. currentmodule:: {name}", "", ".. autosummary::",
                      "   :toctree: generated", ""]
            lines += [f"   {export}" for export in sorted(module.__all__)]
        (folder / f"{name}.rst").write_text("\n".join(lines) + "\n")


def _documented_at(package, name: str) -> str:
    """Where a name of ``validation`` is documented: its subpackage's page."""
    subpackage = ".".join(package._EXPORTS[name].split(".")[:2])
    return f"{subpackage}.{name}"


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

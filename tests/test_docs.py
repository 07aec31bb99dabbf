"""The documentation's API reference lists every public name of every package."""

import importlib
import inspect
import runpy
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_lists_every_export(tmp_path):
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    conf["write_api_pages"](tmp_path)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    assert sorted(conf["PACKAGES"]) == sorted(p.rstrip("*") for p in packages)
    for name in conf["PACKAGES"]:
        module = importlib.import_module(name)
        # What the package exports: its __all__, its lazily loaded names, and the functions
        # and classes of its own that its __init__ imports.
        exported = set(module.__all__) | set(getattr(module, "_EXPORTS", {}))
        exported |= {key for key, value in vars(module).items() if not key.startswith("_")
                     and not inspect.ismodule(value)
                     and getattr(value, "__module__", "").startswith(f"{name}.")}
        page = (tmp_path / f"{name}.rst").read_text().splitlines()
        start = page.index("   :toctree: generated") + 2
        listed = {line.strip() for line in page[start:]}
        assert exported - listed == set(), f"{name}: exported but not in the API reference"

"""The documentation's API reference lists every public name of every package, and the lazy
export tables of the packages agree with their modules."""

import ast
import collections
import importlib
import inspect
import pkgutil
import runpy
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_api_reference_lists_every_export(tmp_path):
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    conf["write_api_pages"](tmp_path)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    documented = set(conf["PACKAGES"])
    assert {name for name in documented if "." not in name} == {p.rstrip("*") for p in packages}
    import validation

    for sub in pkgutil.iter_modules(validation.__path__, "validation."):
        # A subpackage has its page, or each module of it has one (the kit); the command line
        # has the CLI reference instead (docs/cli.md).
        pages = {sub.name} if not sub.ispkg else {sub.name} | {
            m.name for m in pkgutil.iter_modules(importlib.import_module(sub.name).__path__,
                                                 f"{sub.name}.")}
        if sub.ispkg and sub.name != "validation.cli":
            assert pages & documented, f"{sub.name}: no page in the API reference"
    for name in conf["PACKAGES"]:
        module = importlib.import_module(name)
        # What the package exports: its __all__, its lazily loaded names, and the functions
        # and classes of its own that its __init__ imports.
        exported = set(module.__all__) | set(getattr(module, "_EXPORTS", {}))
        exported |= {key for key, value in vars(module).items() if not key.startswith("_")
                     and not inspect.ismodule(value)
                     and getattr(value, "__module__", "").startswith(f"{name}.")}
        assert exported - _listed(tmp_path, name) == set(), \
            f"{name}: exported but not in the API reference"


def _listed(pages: Path, name: str) -> set[str]:
    """The names a package's API page documents, or links to on a subpackage's page (the
    ``validation`` page, whose names its subpackages' pages document)."""
    page = (pages / f"{name}.rst").read_text().splitlines()
    if "   :toctree: generated" in page:
        return {line.strip() for line in page[page.index("   :toctree: generated") + 2:]}
    listed = set()
    for line in page:
        if line.startswith("* :py:obj:`"):
            export, target = line[len("* :py:obj:`"):-len(">`")].split(" <")
            where, _, documented = target.rpartition(".")
            assert documented == export and export in _listed(pages, where), \
                f"{name}.{export} links to {target}, which is not documented"
            listed.add(export)
    return listed


def _module_exports(path: Path) -> list[str]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path}: no __all__")


def test_lazy_subpackages_export_what_their_modules_export():
    """validation.experiments, .data and .report load their names lazily from a table: it
    holds every name of its modules' ``__all__`` that one module alone defines and that no module
    of the package is called (``report.reproduce`` is the module), each mapped to its module, and
    importing every name works."""
    for package in ("experiments", "data", "report"):
        module = importlib.import_module(f"validation.{package}")
        owners = collections.defaultdict(list)
        for path in sorted((ROOT / "validation" / package).glob("*.py")):
            if path.name != "__init__.py":
                for name in _module_exports(path):
                    owners[name].append(f"validation.{package}.{path.stem}")
        modules = {path.stem for path in (ROOT / "validation" / package).glob("*.py")}
        expected = {name: where[0] for name, where in owners.items()
                    if len(where) == 1 and name not in modules}
        assert expected == module._EXPORTS, f"validation.{package}: _EXPORTS differs"
        for name in module.__all__:
            assert getattr(module, name) is getattr(importlib.import_module(expected[name]), name)


def test_published_kit_paths_are_the_kit_modules():
    """The kit's first import paths (validation.strategies, .oracles, .checks) are aliases of
    the validation.kit modules: the same objects, so a monkeypatch on one is seen by both."""
    from validation import checks, oracles, strategies
    from validation.kit import checks as kit_checks
    from validation.kit import oracles as kit_oracles
    from validation.kit import strategies as kit_strategies

    assert (checks, oracles, strategies) == (kit_checks, kit_oracles, kit_strategies)
    from validation.strategies import knapsack_instances

    assert knapsack_instances is kit_strategies.knapsack_instances

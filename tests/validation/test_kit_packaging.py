"""The property-testing kit as a user meets it: the kit page's example file runs as written and
fails with a shrunk counterexample, and the kit imports from the installed package alone."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "NTKLC_HYPOTHESIS_PROFILE")}


def test_kit_page_example_runs_as_written(tmp_path):
    page = (ROOT / "docs" / "kit.md").read_text()
    block = re.search(r"<!-- kit-example -->\n```python\n(.*?)```", page, re.S)
    assert block, "docs/kit.md: no ```python block after <!-- kit-example -->"
    (tmp_path / "test_my_knapsack.py").write_text(block.group(1))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_my_knapsack.py"], cwd=tmp_path, env=_clean_env(),
                          capture_output=True, text=True, timeout=600)
    # The greedy is wrong: the check fails and prints the shrunk instance.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Failing test case: knapsack_solver_is_optimal(" in proc.stdout
    assert "instance=KnapsackInstance(costs=" in proc.stdout
    assert re.search(r"AssertionError: allocation \[.*\] has value .* reaches", proc.stdout)


def test_kit_imports_from_the_installed_package_alone(tmp_path):
    code = ("import sys\n"
            "import validation.checks, validation.oracles, validation.strategies\n"
            "from validation.kit.checks import check_knapsack_solver\n"
            "files = [getattr(m, '__file__', None) for m in list(sys.modules.values())]\n"
            "print('\\n'.join(str(f) for f in files))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    files = [Path(f) for f in proc.stdout.splitlines() if f not in ("None", "")]
    tests = ROOT / "tests"
    assert not [f for f in files if tests in f.parents], "the kit loaded a file from tests/"
    kit = ROOT / "validation" / "kit"
    assert {kit / "strategies.py", kit / "oracles.py", kit / "checks.py"} <= set(files)

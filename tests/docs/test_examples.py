"""Every example of the documentation and the README runs, and prints what its page shows
(the conventions are in tests/docs/doc_examples.py and docs/index.md)."""

import doctest
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from doc_examples import PAGES, ROOT, blocks, commands, output_pattern

DATA = os.environ.get("NTKLC_DATA")
_DATA_SETS = ("mnist", "fashion-mnist")
_ALL = [block for page in PAGES for block in blocks(page)]


@pytest.fixture(scope="module")
def page_folders(tmp_path_factory):
    """One folder per page, shared by its blocks in page order."""
    folders = {}

    def folder(page: Path) -> Path:
        if page not in folders:
            folders[page] = tmp_path_factory.mktemp(page.stem)
        return folders[page]

    return folder


def _environment() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def _missing_data(text: str) -> str | None:
    """The offline data set a command or script reads and that NTKLC_DATA lacks, if any."""
    for name in _DATA_SETS:
        used = f"--data {name}" in text or f'"{name}"' in text
        if used and not (DATA and (Path(DATA) / name).is_dir()):
            return name
    return None


def test_the_pages_have_examples():
    """The collector sees the blocks (a renamed fence or marker would silently run nothing)."""
    languages = {block.language for block in _ALL if block.not_run is None}
    assert {"python", "pycon", "console"} <= languages
    assert all(block.not_run.strip() for block in _ALL if block.not_run is not None)


@pytest.mark.parametrize("block", _ALL, ids=[block.name for block in _ALL])
def test_example(block, page_folders):
    if block.not_run is not None:
        pytest.skip(f"{block.name} is shown, not run: {block.not_run}")
    missing = _missing_data(block.text)
    if missing:
        pytest.skip(f"offline {missing} not found: set NTKLC_DATA to a folder with {missing}/ "
                    "(make test does)")
    folder = page_folders(block.page)
    if block.file is not None:
        (folder / block.file).write_text(block.text)
    elif block.language == "pycon":
        _run_doctest(block, folder)
    elif block.language == "python":
        script = folder / f"example_{block.line}.py"
        script.write_text(block.text)
        done = subprocess.run([sys.executable, script.name], cwd=folder, env=_environment(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{block.name} failed:\n{done.stderr[-3000:]}"
    else:
        for command in commands(block):
            _run_command(block, command, folder)


def _run_doctest(block, folder: Path) -> None:
    test = doctest.DocTestParser().get_doctest(block.text, {}, block.name, str(block.page),
                                               block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        result = runner.run(test, out=report.append)
    finally:
        os.chdir(cwd)
    assert result.failed == 0, "".join(report)


def _run_command(block, command, folder: Path) -> None:
    words = shlex.split(command.line, comments=True)
    assert words and words[0] == "ntklc", f"{block.name}: a console example runs ntklc, not " \
                                          f"{command.line!r}"
    done = subprocess.run(command.line, shell=True, cwd=folder, env=_environment(),
                          capture_output=True, text=True, timeout=600)
    where = f"{block.name}: `{command.line}`"
    assert done.returncode == command.exit_code, \
        f"{where} exited {done.returncode}, the page shows exit {command.exit_code}:\n" \
        f"{done.stderr[-3000:]}"
    if command.exit_code == 2:  # a user error: that one line and nothing else
        assert output_pattern(command.shown).fullmatch(done.stderr), \
            f"{where} printed on stderr:\n{done.stderr}\nthe page shows:\n{command.error_line}"
    elif command.error_line is not None:  # a failed run: the line among its progress and logs
        assert output_pattern([command.error_line]).search(done.stderr), \
            f"{where} printed on stderr:\n{done.stderr}\nthe page shows:\n{command.error_line}"
    elif command.shown:
        assert output_pattern(command.shown).fullmatch(done.stdout), \
            f"{where} printed:\n{done.stdout}\nthe page shows:\n" + "\n".join(command.shown)

"""Skip markers for the tests that need the offline data sets, found through NTKLC_DATA (the
Makefile points it at ../shared/data)."""

import os
from pathlib import Path

import pytest

DATA = os.environ.get("NTKLC_DATA")


def needs_data(name: str):
    """Skip unless ``$NTKLC_DATA/<name>/`` exists, saying how to provide it."""
    return pytest.mark.skipif(
        not DATA or not (Path(DATA) / name).is_dir(),
        reason=f"offline {name} not found: set NTKLC_DATA to a folder with {name}/ "
               "(make test does)")


needs_mnist = needs_data("mnist")

"""The published import path of :mod:`validation.kit.oracles`: the same module object."""

import sys

from validation.kit import oracles

sys.modules[__name__] = oracles

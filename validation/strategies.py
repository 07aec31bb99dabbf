"""The published import path of :mod:`validation.kit.strategies`: the same module object."""

import sys

from validation.kit import strategies

sys.modules[__name__] = strategies

"""The published import path of :mod:`validation.kit.checks`: the same module object."""

import sys

from validation.kit import checks

sys.modules[__name__] = checks

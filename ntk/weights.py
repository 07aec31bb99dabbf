"""Weight laws of mean 0 and variance 1 for random networks (spec section 2).

Each law is named by text, with its one parameter after a colon (``key=value`` also works):

    gaussian     N(0, 1)                                              k4 = 0
    rademacher   +-1 with probability 1/2 each                        k4 = -2
    uniform      U[-sqrt 3, sqrt 3]                                   k4 = -6/5
    student:nu   t_nu sqrt((nu - 2)/nu), nu > 2                       k4 = 6/(nu - 4) (inf: nu <= 4)
    ternary:eps  0 w.p. eps, +-1/sqrt(1 - eps) w.p. (1 - eps)/2 each  k4 = 1/(1 - eps) - 3

k4 = E[w^4] - 3 is the excess kurtosis: it is what separates the laws in the first-layer kernel
when d2 != 0 (spec section 6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ntklc.errors import InputError

__all__ = ["LAWS", "WeightLaw", "parse_weight_law", "sample_weights"]

# Name -> its parameter's name (None: the law has no parameter).
_PARAMETER: dict[str, str | None] = {
    "gaussian": None,
    "rademacher": None,
    "uniform": None,
    "student": "nu",
    "ternary": "eps",
}

#: Names of the supported weight laws.
LAWS: tuple[str, ...] = tuple(_PARAMETER)

_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class WeightLaw:
    """A weight law of mean 0 and variance 1.

    Attributes:
        name: one of :data:`LAWS`.
        params: the law's parameter by name (``{"nu": 5.0}``, ``{"eps": 0.5}`` or empty).
    """

    name: str
    params: dict[str, float] = field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        key = _PARAMETER[self.name]
        if key is None:
            return self.name
        value = self.params[key]
        return f"{self.name}:{int(value) if value.is_integer() else value}"

    @property
    def excess_kurtosis(self) -> float:
        """k4 = E[w^4] - 3 (``math.inf`` for Student-t with nu <= 4)."""
        if self.name == "gaussian":
            return 0.0
        if self.name == "rademacher":
            return -2.0
        if self.name == "uniform":
            return 9.0 / 5.0 - 3.0
        if self.name == "student":
            nu = self.params["nu"]
            return 6.0 / (nu - 4.0) if nu > 4.0 else math.inf
        return 1.0 / (1.0 - self.params["eps"]) - 3.0


def parse_weight_law(text: str | WeightLaw) -> WeightLaw:
    """Parse a weight law such as ``"gaussian"``, ``"student:5"`` or ``"ternary:eps=0.9"``.

    Args:
        text: the law's name with its parameter after a colon, or a :class:`WeightLaw`
            (returned as is).

    Returns:
        The :class:`WeightLaw`.

    Raises:
        InputError: unknown law, missing, superfluous or malformed parameter, ``nu <= 2`` or
            ``eps`` outside ``[0, 1)``.
    """
    if isinstance(text, WeightLaw):
        return text
    if not isinstance(text, str):
        raise InputError(f"a weight law must be given by name, got {type(text).__name__}")
    name, colon, value = (part.strip() for part in text.partition(":"))
    name = name.lower()
    if name not in _PARAMETER:
        raise InputError(f"unknown weight law {name!r}; known: {', '.join(LAWS)}")
    key = _PARAMETER[name]
    if key is None:
        if colon:
            raise InputError(f"weight law {name!r} takes no parameter, got {text!r}")
        return WeightLaw(name)
    given_key, equals, number = value.rpartition("=")
    if equals and given_key.strip() != key:
        raise InputError(f"weight law {name!r} has the single parameter {key!r}, "
                         f"got {given_key.strip()!r}")
    try:
        x = float(number)
    except ValueError:
        raise InputError(f"weight law {name!r} needs a number as its parameter {key} "
                         f"(e.g. '{name}:{'5' if key == 'nu' else '0.5'}'), got {text!r}"
                         ) from None
    if key == "nu" and not (math.isfinite(x) and x > 2.0):
        raise InputError(f"Student-t weights need a finite nu > 2 (unit variance), got {x}")
    if key == "eps" and not 0.0 <= x < 1.0:
        raise InputError(f"ternary weights need a sparsity eps in [0, 1), got {x}")
    return WeightLaw(name, {key: x})


def sample_weights(law: str | WeightLaw, shape, rng: np.random.Generator,
                   dtype=np.float64) -> np.ndarray:
    """Draw an array of i.i.d. weights of mean 0 and variance 1.

    Args:
        law: a :class:`WeightLaw` or its text (see :func:`parse_weight_law`).
        shape: shape of the result, e.g. ``(d_l, d_{l-1})``.
        rng: the only source of randomness.
        dtype: floating dtype of the result (float64 or float32).

    Returns:
        Array of ``shape`` and ``dtype``.

    Raises:
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
        InputError: bad law text or a non-floating ``dtype``.
    """
    law = parse_weight_law(law)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"weights are float32 or float64, got {dtype}")
    if law.name == "gaussian":
        return rng.standard_normal(shape, dtype=dtype)
    if law.name == "rademacher":
        w = rng.integers(0, 2, size=shape, dtype=np.int8).astype(dtype)
        w *= 2
        w -= 1
        return w
    if law.name == "uniform":
        w = rng.random(shape, dtype=dtype)
        w -= 0.5
        w *= 2 * _SQRT3
        return w
    if law.name == "student":
        nu = law.params["nu"]
        return (rng.standard_t(nu, size=shape) * math.sqrt((nu - 2.0) / nu)).astype(dtype)
    eps = law.params["eps"]
    u = rng.random(shape)
    level = 1.0 / math.sqrt(1.0 - eps)
    # u < eps: zero; then the remaining mass splits evenly between -level and +level.
    return np.where(u < eps, 0.0, np.where(u < (1.0 + eps) / 2.0, -level, level)).astype(dtype)

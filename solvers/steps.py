"""Closed forms of the activation constants of multi-level step functions.

A k-level step function has thresholds theta_1 < ... < theta_{k-1} and levels v_0, ..., v_{k-1}
(``ntk.activations.step_activation``). At input scale tau, with z_j = theta_j / tau, jumps
Delta_j = v_j - v_{j-1}, phi/Phi the standard normal pdf/cdf and P_j = Phi(z_{j+1}) - Phi(z_j)
the probability of level j (z_0 = -inf, z_k = +inf):

    m0        = sum_j v_j P_j
    d1        = sum_j Delta_j phi(z_j) / tau                    (E[xi sigma] / tau)
    d2        = sum_j Delta_j z_j phi(z_j) / tau^2              (E[(xi^2 - 1) sigma] / tau^2)
    tau2_next = sum_j P_j (v_j - m0)^2
    d3        = sum_j [(v_j - m0)^2 - (v_{j-1} - m0)^2] z_j phi(z_j) / tau^2

because int_a^b xi phi = phi(a) - phi(b) and int_a^b (xi^2 - 1) phi = a phi(a) - b phi(b).
E[sigma'^2] is infinite (the NTK of a step network is undefined).

Per-level vectors used by the solver (``level_projections``): a_j = E[xi 1{level j}],
b_j = E[(xi^2 - 1) 1{level j}] and P_j, so that tau d1 = a.v, tau^2 d2 = b.v.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ntk.activations import Activation, step_activation
from ntk.constants import ActivationConstants
from ntklc.errors import InputError

__all__ = ["StepFunction", "level_projections", "step_constants"]


def _check(thresholds: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    th = np.asarray(thresholds, dtype=float)
    lv = np.asarray(levels, dtype=float)
    if th.ndim != 1 or lv.ndim != 1 or lv.size != th.size + 1 or th.size < 1:
        raise InputError(f"need k >= 2 levels and k - 1 thresholds, got {lv.size} levels and "
                         f"{th.size} thresholds")
    if not (np.all(np.isfinite(th)) and np.all(np.isfinite(lv))):
        raise InputError("thresholds and levels must be finite")
    if np.any(np.diff(th) <= 0):
        raise InputError(f"thresholds must be strictly ascending, got {th.tolist()}")
    return th, lv


@functools.lru_cache(maxsize=1024)
def _step_activation(thresholds: tuple[float, ...], levels: tuple[float, ...]) -> Activation:
    """``step_activation``, memoised: equal step functions give one (immutable) object."""
    return step_activation(thresholds, levels)


def level_projections(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-level P_j, a_j = E[xi 1_j], b_j = E[(xi^2 - 1) 1_j] for standardised thresholds z.

    Args:
        z: (k-1,) ascending thresholds in units of the input scale.

    Returns:
        ``(P, a, b)``, each (k,); they sum to 1, 0 and 0.
    """
    z = np.asarray(z, dtype=float)
    n = z.size
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    zphi = z * phi
    # Phi differences from whichever tail is more accurate (the lower tail for a level whose
    # upper edge is <= 0); the same operations as with padded edge arrays, fewer temporaries.
    cdf = np.empty(n + 2)
    cdf[0], cdf[-1] = 0.0, 1.0
    special.ndtr(z, out=cdf[1:-1])
    upper = np.empty(n + 2)
    upper[0], upper[-1] = 1.0, 0.0
    special.ndtr(-z, out=upper[1:-1])
    P = upper[:-1] - upper[1:]
    low = z <= 0
    P[:-1][low] = cdf[1:-1][low] - cdf[:-2][low]
    a = np.empty(n + 1)
    a[0], a[-1] = -phi[0], phi[-1]
    np.subtract(phi[:-1], phi[1:], out=a[1:-1])
    b = np.empty(n + 1)
    b[0], b[-1] = -zphi[0], zphi[-1]
    np.subtract(zphi[:-1], zphi[1:], out=b[1:-1])
    return P, a, b


def _level_projections_padded(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded-array form of :func:`level_projections` (kept as its reference in tests)."""
    z = np.asarray(z, dtype=float)
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    zphi = z * phi
    cdf = special.ndtr(z)
    upper = special.ndtr(-z)
    cdf_edges = np.concatenate([[0.0], cdf, [1.0]])
    upper_edges = np.concatenate([[1.0], upper, [0.0]])
    P = np.where(np.concatenate([z, [np.inf]]) <= 0, np.diff(cdf_edges), -np.diff(upper_edges))
    pad = np.concatenate([[0.0], phi, [0.0]])
    zpad = np.concatenate([[0.0], zphi, [0.0]])
    return P, pad[:-1] - pad[1:], zpad[:-1] - zpad[1:]


def step_constants(thresholds, levels, tau: float) -> ActivationConstants:
    """m0, d1, d2, d3, tau2_next (closed forms of the module docstring) at input scale tau.

    Args:
        thresholds: (k-1,) strictly ascending.
        levels: (k,).
        tau: input scale, > 0.

    Returns:
        :class:`~ntk.constants.ActivationConstants` with ``esp2 = inf`` and
        ``method = "closed-form"``.
    """
    th, lv = _check(thresholds, levels)
    if not (math.isfinite(tau) and tau > 0):
        raise InputError(f"tau must be a positive finite number, got {tau}")
    z = th / tau
    P, a, b = level_projections(z)
    m0 = float(P @ lv)
    c = lv - m0
    return ActivationConstants(
        tau=float(tau), m0=m0, d1=float(a @ lv) / tau, d2=float(b @ lv) / tau**2,
        d3=float(b @ (c * c)) / tau**2, tau2_next=float(P @ (c * c)), esp2=math.inf,
        method="closed-form")


@dataclass(frozen=True)
class StepFunction:
    """A quantized activation in canonical form, with the family it was solved in.

    Attributes:
        family: ``binary`` (b(1[t < s1] + 1[t > s2])), ``ternary`` (-b 1[t < -s] + b 1[t > s])
            or ``levels`` (general k-level).
        params: the family's parameters by name.
        thresholds: (k-1,) ascending.
        levels: (k,).
    """

    family: str
    params: dict[str, float]
    thresholds: tuple[float, ...]
    levels: tuple[float, ...]

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def activation(self) -> Activation:
        """The :class:`~ntk.activations.Activation` of this step function."""
        return _step_activation(tuple(self.thresholds), tuple(self.levels))

    def constants(self, tau: float) -> ActivationConstants:
        """Closed-form constants at input scale ``tau``."""
        return step_constants(self.thresholds, self.levels, tau)

    def scaled(self, c: float) -> StepFunction:
        """Levels multiplied by ``c`` > 0 (the gauge of a hidden layer)."""
        params = {k: (v * c if k in ("b",) or k.startswith("v") else v)
                  for k, v in self.params.items()}
        return StepFunction(self.family, params, self.thresholds,
                            tuple(v * c for v in self.levels))

    def as_dict(self) -> dict:
        return {"family": self.family, "params": dict(self.params),
                "thresholds": list(self.thresholds), "levels": list(self.levels)}

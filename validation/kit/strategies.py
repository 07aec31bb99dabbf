"""Public Hypothesis strategies for property-testing compression solvers and theory code.

Each strategy draws plain NumPy data or small frozen objects, states its bounds and why, and
shrinks towards small, readable cases. Import needs the ``testing`` extra (``pip install
ntklc[testing]``: Hypothesis). See ``validation.kit.checks`` for ready-made properties and
``validation.kit.oracles`` for the slow references they compare against.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from ntklc.errors import InputError

__all__ = [
    "BUDGET_KINDS",
    "GMM_COV_NORM_MAX",
    "GMM_MEAN_NORM_MAX",
    "GMM_T_MAX",
    "SYMBOL_KINDS",
    "ActivationTarget",
    "KnapsackInstance",
    "QuantizationProblem",
    "StepCase",
    "SymmetricOperator",
    "activation_targets",
    "activations",
    "gmm_models",
    "gmm_samples",
    "gmm_violations",
    "hermite_share",
    "integer_symbols",
    "knapsack_instances",
    "quantization_problems",
    "step_functions",
    "symmetric_operator",
    "symmetric_operators",
    "weight_laws",
]

# == solvers: knapsack, entropy coding, rounding ==================================================
#: Budget regimes of :func:`knapsack_instances`, in shrinking order.
BUDGET_KINDS = ("tight", "exact", "everything", "nothing")
#: Kinds of tensors of :func:`integer_symbols`, in shrinking order.
SYMBOL_KINDS = ("single", "skewed", "uniform", "ternary", "laplace", "extreme")


class KnapsackInstance(tuple):
    """A grouped (multiple-choice) knapsack ``(costs, values, budget)``: take exactly one choice
    per group, total cost at most ``budget``, total value as large as possible.

    ``costs[g]`` and ``values[g]`` are 1-D float64 arrays of the same length (the choices of
    group g; groups may differ in length); ``budget`` is a float. Unpacks as a 3-tuple, so
    ``fn(*instance)`` is the calling convention of
    :func:`validation.kit.checks.check_knapsack_solver`.
    """

    __slots__ = ()

    def __new__(cls, costs, values, budget):
        return super().__new__(cls, (list(costs), list(values), float(budget)))

    costs = property(lambda self: self[0])
    values = property(lambda self: self[1])
    budget = property(lambda self: self[2])

    def __repr__(self) -> str:
        costs = [c.tolist() for c in self.costs]
        values = [v.tolist() for v in self.values]
        return f"KnapsackInstance(costs={costs}, values={values}, budget={self.budget})"

    @property
    def lightest(self) -> float:
        """Cost of the cheapest allocation (the cheapest choice of every group)."""
        return math.fsum(float(c.min()) for c in self.costs)

    @property
    def heaviest(self) -> float:
        """Cost of the dearest allocation: a budget this large fits every allocation."""
        return math.fsum(float(c.max()) for c in self.costs)

    def as_arrays(self, fill_cost: float = 0.0, fill_value: float = -math.inf
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(groups, max choices) arrays of costs and values, short groups padded with
        ``fill_cost`` and ``fill_value`` (``-inf``: a choice no maximiser takes)."""
        width = max(len(c) for c in self.costs)
        costs = np.full((len(self.costs), width), fill_cost)
        values = np.full((len(self.costs), width), fill_value)
        for g, (c, v) in enumerate(zip(self.costs, self.values, strict=True)):
            costs[g, :len(c)], values[g, :len(v)] = c, v
        return costs, values


@st.composite
def knapsack_instances(draw, max_groups: int = 6, max_choices: int = 5, max_cost: int = 12,
                       value_bound: float = 10.0, units=(1.0, 0.5, 0.125),
                       budgets=BUDGET_KINDS) -> KnapsackInstance:
    """Grouped knapsack instances (:class:`KnapsackInstance`) for knapsack solvers.

    Draws 1 to ``max_groups`` groups of 1 to ``max_choices`` choices each (groups differ in
    length). Costs are ``unit * k`` with k an integer in [0, ``max_cost``] and ``unit`` one of
    ``units`` (powers of two by default, so every sum of costs and every budget is exact in
    float64: "fits the budget" never depends on rounding). Values are either small integers in
    [-3, 3] (many ties between choices and between whole allocations) or floats in
    [-``value_bound``, ``value_bound``]; negative values are allowed because exactly one choice
    per group must be taken. The budget, a float, is one of ``budgets``:

    * ``"tight"``: a whole number of units between the lightest and the heaviest allocation;
    * ``"exact"``: exactly the cost of some allocation (a solver must accept equality);
    * ``"everything"``: at least the heaviest allocation (every allocation fits);
    * ``"nothing"``: below the lightest allocation (costs then at least one unit), possibly by
      half a unit only; the right answer is ``None``.

    The bounds keep instances small enough for an exact MILP in milliseconds and for a DP over
    the budget in units, and large enough that greedy rules fail (ratios, ties, negative
    values). Shrinks to one group with one choice of cost 0 and value 0, unit 1, tight budget.
    """
    groups = draw(st.integers(1, max_groups))
    sizes = draw(st.lists(st.integers(1, max_choices), min_size=groups, max_size=groups))
    unit = draw(st.sampled_from(units))
    kind = draw(st.sampled_from(budgets))
    low = 1 if kind == "nothing" else 0
    ints = [np.array(draw(st.lists(st.integers(low, max_cost), min_size=n, max_size=n)))
            for n in sizes]
    value_kind = draw(st.sampled_from(["ties", "correlated", "floats"]))
    if value_kind == "floats":
        value = st.floats(-value_bound, value_bound, allow_subnormal=False)
    else:
        value = st.integers(-3, 3).map(float)
    values = [np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=float)
              for n in sizes]
    if value_kind == "correlated":
        # Value grows with cost (more bits, smaller loss): the instances where ratio-greedy
        # rules go wrong most often.
        values = [v + c for v, c in zip(values, ints, strict=True)]
    lightest = int(sum(c.min() for c in ints))
    heaviest = int(sum(c.max() for c in ints))
    if kind == "tight":
        budget = draw(st.integers(lightest, heaviest))
    elif kind == "exact":
        budget = sum(int(c[draw(st.integers(0, len(c) - 1))]) for c in ints)
    elif kind == "everything":
        budget = heaviest + draw(st.integers(0, 3))
    else:
        budget = lightest - draw(st.sampled_from([1.0, 0.5]))
        budget = max(0.0, budget - draw(st.integers(0, lightest - 1)))
    return KnapsackInstance([unit * c.astype(float) for c in ints], values, unit * budget)


def _narrowest_of(x: np.ndarray, dtypes) -> np.ndarray:
    """``x`` (int64) as the first of ``dtypes`` that holds its values, else int64."""
    for dtype in dtypes:
        info = np.iinfo(dtype)
        if info.min <= int(x.min()) and int(x.max()) <= info.max:
            return x.astype(dtype)
    return x


@st.composite
def integer_symbols(draw, min_dims: int = 1, max_dims: int = 1, max_side: int = 256,
                    kinds=SYMBOL_KINDS,
                    dtypes=(np.int8, np.uint8, np.int16, np.int32, np.uint64)) -> np.ndarray:
    """Non-empty integer tensors for entropy coders, 1-D by default.

    Shape: ``min_dims`` to ``max_dims`` dimensions (0 gives a 0-d array) of 1 to ``max_side``
    entries each, so at least one entry. Values, by kind (one of ``kinds``):

    * ``"single"``: one value repeated, anywhere in the int64 range (zero information: a coder
      should spend only its header);
    * ``"skewed"``: zeros with a drawn probability in [0, 1], else uniform in [-3, 3];
    * ``"uniform"``: uniform on ``span + 1`` consecutive integers (span 1, 2, 3, 10, 300,
      70 000 or 2^40) starting anywhere in [-2^62, 2^62] (near-maximal entropy, far values);
    * ``"ternary"``: {-1, 0, +1} with a zero share eps in [0, 1], 0 and 1 included;
    * ``"laplace"``: rounded Laplace of scale 0.3, 2 or 50 (quantizer-like outputs);
    * ``"extreme"``: int64 minimum and maximum mixed with -1, 0, 1 (overflow in gaps, zigzag).

    The dtype is the first of a drawn order of ``dtypes`` that holds the values, else int64, so
    narrow, unsigned and 64-bit inputs all occur. The entries come from a NumPy generator seeded
    by a drawn integer; shrinking goes to fewer entries and the earlier kinds (a single 0).
    The bounds keep the largest tensor at a few hundred entries (fast coders and oracles) and
    every value inside int64.
    """
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=min_dims,
                                max_size=max_dims)))
    size = math.prod(shape)
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "single":
        x = np.full(size, draw(st.integers(-(2**63), 2**63 - 1)), dtype=np.int64)
    elif kind == "skewed":
        zero = rng.random(size) < draw(st.floats(0.0, 1.0))
        x = np.where(zero, 0, rng.integers(-3, 4, size=size))
    elif kind == "uniform":
        low = draw(st.integers(-(2**62), 2**62))
        span = draw(st.sampled_from([1, 2, 3, 10, 300, 70_000, 2**40]))
        x = rng.integers(low, low + span, size=size, endpoint=True)
    elif kind == "ternary":
        eps = draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0))
        u = rng.random(size)
        x = np.where(u < eps, 0, np.where(u < (1 + eps) / 2, -1, 1))
    elif kind == "laplace":
        x = np.rint(rng.laplace(0.0, draw(st.sampled_from([0.3, 2.0, 50.0])), size=size))
    elif kind == "extreme":
        info = np.iinfo(np.int64)
        x = rng.choice(np.array([info.min, -1, 0, 1, info.max]), size=size)
    else:
        raise InputError(f"unknown kind {kind!r}; known: {', '.join(SYMBOL_KINDS)}")
    x = x.astype(np.int64).reshape(shape)
    return _narrowest_of(x, draw(st.permutations(list(dtypes))))


class QuantizationProblem(tuple):
    """A rounding problem ``(weights, gradient, bits, channel_axis, curvature)``.

    ``weights`` and ``gradient`` are float64 arrays of one shape; ``bits`` the bit budget per
    weight of a symmetric grid with levels -L..L, L = 2^(bits-1) - 1; ``channel_axis`` the axis
    with one grid scale per index (``None``: one scale for the tensor); ``curvature`` the guard
    h >= 0 (``inf`` allowed) of the objective g n + h n^2 / 2 of gradient-aware rounding.
    """

    __slots__ = ()

    def __new__(cls, weights, gradient, bits, channel_axis, curvature):
        return super().__new__(cls, (weights, gradient, int(bits), channel_axis,
                                     float(curvature)))

    weights = property(lambda self: self[0])
    gradient = property(lambda self: self[1])
    bits = property(lambda self: self[2])
    channel_axis = property(lambda self: self[3])
    curvature = property(lambda self: self[4])

    @property
    def levels(self) -> int:
        """L = 2^(bits-1) - 1: the grid is s * {-L, ..., L}."""
        return 2 ** (self.bits - 1) - 1

    def __repr__(self) -> str:
        return (f"QuantizationProblem(weights=np.array({self.weights.tolist()}), "
                f"gradient=np.array({self.gradient.tolist()}), bits={self.bits}, "
                f"channel_axis={self.channel_axis}, curvature={self.curvature})")


@st.composite
def quantization_problems(draw, max_side: int = 12, min_bits: int = 2, max_bits: int = 8,
                          curvatures=(0.0, 0.3, 10.0, math.inf)) -> QuantizationProblem:
    """Weights, gradients, bit budgets and grids (:class:`QuantizationProblem`) for rounding.

    Draws a (rows, cols) matrix, 1 to ``max_side`` each, of Gaussian weights times a
    magnitude in [1e-3, 1e3] (rounding must be scale-free), optionally sparse (a drawn share of
    exact zeros, which lie on the grid, and sometimes an all-zero channel, whose scale is 1);
    a Gaussian gradient of the same shape; ``bits`` in [``min_bits``, ``max_bits``] (2 to 8:
    grids of 3 to 255 levels, where brute force over grid points stays cheap); the channel axis
    (``None``, 0 or 1: one scale per tensor, row or column) and a curvature guard from
    ``curvatures`` (0: purely gradient-opposed, ``inf``: nearest rounding). The grid itself is
    the symmetric absmax grid of :func:`validation.kit.oracles.absmax_grid`. Entries come from a
    NumPy generator seeded by a drawn integer; shrinks to a 1 x 1 dense 2-bit problem.
    """
    rows, cols = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    W = rng.standard_normal((rows, cols)) * draw(st.floats(1e-3, 1e3))
    G = rng.standard_normal((rows, cols))
    bits = draw(st.integers(min_bits, max_bits))
    axis = draw(st.sampled_from([None, 0, 1]))
    if draw(st.booleans()):
        W[rng.random(W.shape) < draw(st.floats(0.0, 1.0))] = 0.0
        if draw(st.booleans()):
            W[0] = 0.0
    return QuantizationProblem(W, G, bits, axis, draw(st.sampled_from(curvatures)))

# == theory: GMMs, activations, step functions, targets, weight laws, operators ===================
from dataclasses import dataclass as _dataclass  # noqa: E402

#: Bounds that the drawn GMMs respect (spec section 1: ||mu_a|| = O(1), ||C_a|| = O(1),
#: t_a = tr(C_a - C°)/sqrt(p) = O(1)); ``gmm_models(within=False)`` breaks one of them.
GMM_MEAN_NORM_MAX = 4.0
GMM_COV_NORM_MAX = 8.0
GMM_T_MAX = 3.0


def gmm_violations(model) -> list[str]:
    """Names of the spec-section-1 growth bounds that ``model`` (a GaussianMixture) breaks:
    ``"mean"`` (some ||mu_a|| > GMM_MEAN_NORM_MAX), ``"covariance"`` (some ||C_a||_2 >
    GMM_COV_NORM_MAX, or C_a not symmetric positive semi-definite) and ``"trace"`` (some
    |t_a| > GMM_T_MAX). Empty when the model is within the theorem's assumptions."""
    out = []
    if np.max(np.linalg.norm(model.means, axis=1)) > GMM_MEAN_NORM_MAX:
        out.append("mean")
    eig = np.linalg.eigvalsh(model.covariances)
    sym = np.allclose(model.covariances, np.swapaxes(model.covariances, 1, 2))
    if not sym or eig.min() < -1e-10 or eig.max() > GMM_COV_NORM_MAX:
        out.append("covariance")
    _, t, _ = model.statistics()
    if np.max(np.abs(t)) > GMM_T_MAX:
        out.append("trace")
    return out


@st.composite
def gmm_models(draw, max_classes: int = 3, min_dim: int = 16, max_dim: int = 64,
               within: bool = True):
    """K-class Gaussian mixtures (``rmt.gmm.GaussianMixture``) for the theory code.

    Draws K in [1, max_classes], p in [min_dim, max_dim] (min_dim >= 16 so that
    1 + t_a/sqrt(p) >= 1/4), proportions from integer weights 1..4 (c_a >= 1/13), means
    mu_a = r_a u_a with u_a a random unit vector and r_a in [0, GMM_MEAN_NORM_MAX], and
    covariances C_a = (1 + s_a/sqrt(p)) S_a with S_a of trace p: the identity, an AR(1)
    matrix with |rho| <= 0.6 (||S|| <= 4) or a diagonal with entries in [1/2, 2] rescaled to
    mean 1 (||S|| <= 4); s_a in [-GMM_T_MAX/2, GMM_T_MAX/2] centred by the proportions, so
    t_a = s_a - sum_b c_b s_b (|t_a| <= GMM_T_MAX) and ||C_a|| <= 7 < GMM_COV_NORM_MAX. These
    are the growth rates of spec section 1 with explicit constants, so
    ``gmm_violations(model) == []``. Shrinks to one class in dimension min_dim with zero mean
    and identity covariance.

    With ``within=False`` the model breaks a chosen bound: a mean of norm 2 sqrt(p) (only
    ``"mean"``), a rank-one spike of size ~3p/4 in C_a at fixed trace, every class unscaled (only
    ``"covariance"``), or
    one class with C_a = (1 + x) S_a, x >= 1, so that t_a >= 2 GMM_T_MAX grows like sqrt(p)
    (``"trace"``, possibly ``"covariance"`` too); ``gmm_violations`` names what is broken.
    """
    from rmt.gmm import GaussianMixture, ar1_matrix

    if min_dim < 16 or max_dim < min_dim:
        raise InputError("need 16 <= min_dim <= max_dim")
    k = draw(st.integers(1, max_classes))
    p = draw(st.integers(max(min_dim, k), max_dim))
    weights = np.array(draw(st.lists(st.integers(1, 4), min_size=k, max_size=k)), dtype=float)
    c = weights / weights.sum()
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    radii = np.array(draw(st.lists(st.floats(0.0, GMM_MEAN_NORM_MAX), min_size=k, max_size=k)))
    directions = rng.standard_normal((k, p))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = radii[:, None] * directions
    bases = []
    for _ in range(k):
        kind = draw(st.sampled_from(["identity", "ar1", "diagonal"]))
        if kind == "identity":
            bases.append(np.eye(p))
        elif kind == "ar1":
            bases.append(ar1_matrix(p, draw(st.floats(-0.6, 0.6))))
        else:
            diag = rng.uniform(0.5, 2.0, p)
            bases.append(np.diag(diag / diag.mean()))
    s = np.array(draw(st.lists(st.floats(-GMM_T_MAX / 2, GMM_T_MAX / 2), min_size=k,
                               max_size=k)))
    s -= c @ s
    scales = 1.0 + s / math.sqrt(p)
    if not within:
        broken = draw(st.sampled_from(["mean", "covariance", "trace"]))
        a = draw(st.integers(0, k - 1))
        if broken == "mean":
            means[a] = 2.0 * math.sqrt(p) * directions[a]
        elif broken == "covariance":
            u = directions[a]
            bases[a] = bases[a] + 3 * p * np.outer(u, u)
            bases[a] *= p / np.trace(bases[a])  # keep tr = p: only the norm is broken
            # Unscaled classes (t = 0): a scale 1 + s_a/sqrt(p) as low as 1/4 would pull the
            # spike, about 3p/4 >= 12, back under GMM_COV_NORM_MAX at small p.
            scales = np.ones(k)
        else:
            if k == 1:  # one class has t = 0: split it in two to have an offset to break
                k, a = 2, 0
                means = np.vstack([means, -means])
                bases = [bases[0], bases[0]]
                c = np.array([0.5, 0.5])
            # C_a = (1 + x) S_a, the others unscaled: t_a = x (1 - c_a) sqrt(p) >= 2 GMM_T_MAX.
            x = max(1.0, 2 * GMM_T_MAX / ((1 - c[a]) * math.sqrt(p)))
            scales = np.ones(k)
            scales[a] += x
    cov = scales[:, None, None] * np.stack(bases)
    return GaussianMixture(means=means, covariances=cov, proportions=c)


@st.composite
def gmm_samples(draw, max_classes: int = 3, min_dim: int = 16, max_dim: int = 64,
                max_n: int = 96, within: bool = True):
    """Draws (``rmt.gmm.GMMSample``) of :func:`gmm_models`: n in [max(13, 4K), max_n]
    samples (at least one per class, since c_a >= 1/13), an integer seed, float64, sorted by
    class. n/p stays of order one as in the theorem. Shrinks to the smallest n."""
    from rmt.gmm import sample_gmm

    model = draw(gmm_models(max_classes, min_dim, max_dim, within))
    n = draw(st.integers(max(13, 4 * model.n_classes), max(max_n, 13, 4 * model.n_classes)))
    return sample_gmm(model, n, seed=draw(st.integers(0, 2**32 - 1)))


_SMOOTH = ("tanh", "erf", "sin", "cos", "gelu", "swish", "sigmoid")
_KINKED = ("relu", "lrelu", "abs", "quad")
_JUMPS = ("sign", "binary", "ternary")


@st.composite
def activations(draw, smooth_only: bool = False, jumps: bool = False):
    """Catalogue activations (``ntk.Activation``) with valid parameters.

    ``smooth_only``: only C-infinity ones (tanh, erf, sin, cos, gelu, swish, sigmoid).
    Otherwise also the continuous piecewise polynomials relu, lrelu (a in [-1, 1]), abs and
    quad, and with ``jumps=True`` the discontinuous sign, binary and ternary (s1 in [-2, 2],
    s2 = s1 + gap with gap in [0, 2], |b| in [1/4, 2]: thresholds within two input scales so
    each level has visible mass). Parameters shrink to the defaults' neighbourhood (0 and
    small values); names shrink to ``tanh`` (or ``relu``).
    """
    from ntk import activation

    names = _SMOOTH if smooth_only else _KINKED + _SMOOTH + (_JUMPS if jumps else ())
    name = draw(st.sampled_from(names))
    if name == "lrelu":
        return activation(name, a=draw(st.floats(-1.0, 1.0)))
    if name in ("binary", "ternary"):
        s1 = draw(st.floats(-2.0, 2.0))
        s2 = s1 + draw(st.floats(0.0, 2.0))
        b = draw(st.floats(0.25, 2.0)) * draw(st.sampled_from([1.0, -1.0]))
        return activation(name, s1=s1, s2=s2, b=b)
    return activation(name)


@_dataclass(frozen=True)
class StepCase:
    """A drawn k-level step activation: ``thresholds`` (k-1, strictly ascending), ``levels``
    (k, consecutive ones distinct) and whether it is odd (``symmetric``)."""

    thresholds: tuple[float, ...]
    levels: tuple[float, ...]
    symmetric: bool

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def activation(self):
        """The ``ntk.Activation`` (``ntk.step_activation``)."""
        from ntk import step_activation

        return step_activation(self.thresholds, self.levels)


@st.composite
def step_functions(draw, max_levels: int = 8, min_levels: int = 2, symmetric: bool = False):
    """k-level piecewise-constant activations (:class:`StepCase`), k in [min_levels,
    max_levels].

    General: first threshold in [-3, 0], gaps in [0.2, 1] (so the cuts lie within [-3, 4],
    a few input scales, and no level has negligible mass); first level in [-2, 2] and jumps of
    size [0.2, 1.5] with either sign, so the levels need not be monotone but no two
    consecutive ones coincide (exactly k levels). Symmetric (odd): thresholds symmetric about
    0 (0 itself for even k) with gaps in [0.2, 1], levels antisymmetric with increasing
    magnitudes (steps in [0.2, 1.5]) and a 0 level for odd k. Shrinks to 2 levels (the sign
    function for ``symmetric``) with the smallest gaps and jumps.
    """
    k = draw(st.integers(max(2, min_levels), max_levels))
    if symmetric:
        h = (k - 1) // 2
        y = np.cumsum(draw(st.lists(st.floats(0.2, 1.0), min_size=h, max_size=h)))
        cuts = np.concatenate([-y[::-1], [0.0] if k % 2 == 0 else [], y])
        half = np.cumsum(draw(st.lists(st.floats(0.2, 1.5), min_size=k // 2,
                                       max_size=k // 2)))
        levels = np.concatenate([-half[::-1], [0.0] if k % 2 else [], half])
    else:
        start = draw(st.floats(-3.0, 0.0))
        gaps = draw(st.lists(st.floats(0.2, 1.0), min_size=k - 2, max_size=k - 2))
        cuts = start + np.concatenate([[0.0], np.cumsum(gaps)])
        first = draw(st.floats(-2.0, 2.0))
        jumps = [draw(st.floats(0.2, 1.5)) * draw(st.sampled_from([1.0, -1.0]))
                 for _ in range(k - 1)]
        levels = first + np.concatenate([[0.0], np.cumsum(jumps)])
    return StepCase(tuple(float(t) for t in cuts), tuple(float(v) for v in levels), symmetric)


def hermite_share(d1: float, d2: float, tau2: float, tau: float) -> float:
    """((tau d1)^2 + (tau^2 d2)^2 / 2) / tau2: the share of the output variance tau2 carried by
    the degree-1 and 2 Hermite components of sigma(tau xi). Every function of a Gaussian has
    share <= 1 (Parseval), so a target with share > 1 is infeasible for any activation."""
    return ((tau * d1) ** 2 + (tau * tau * d2) ** 2 / 2) / tau2


@_dataclass(frozen=True)
class ActivationTarget:
    """Constants a ternarization solver must match at input scale ``tau_in``: d1, d2, d3 and
    the output variance ``tau2``; ``source`` says where they come from."""

    d1: float
    d2: float
    d3: float
    tau2: float
    tau_in: float
    source: str

    @property
    def share(self) -> float:
        """:func:`hermite_share` of the target (> 1: infeasible)."""
        return hermite_share(self.d1, self.d2, self.tau2, self.tau_in)


_TARGET_ACTS = ("tanh", "erf", "sin", "cos", "abs", "sign", "relu", "gelu", "sigmoid", "swish")
_TARGET_TAUS = (1.0, 2.0, 1.5, 0.5)


@st.composite
def activation_targets(draw, feasible: bool = True, max_depth: int = 2,
                       max_share: float = 0.95):
    """Ternarization targets (:class:`ActivationTarget`) from real dense networks.

    Draws a depth L in [1, max_depth], one catalogue activation per layer (tanh, erf, sin, cos,
    abs, sign, relu, gelu, sigmoid, swish) and tau0 from the grid (1, 2, 1.5, 0.5); the target
    is the last layer's (d1, d2, d3, tau_L^2) at its input scale tau_{L-1} along the network's
    own tau chain (``ntk.tau_chain``). The grid is coarse on purpose: a solver is slow, and
    repeated targets let a check memoise it.

    ``feasible=True``: only targets with Hermite share in (0, max_share]; max_share < 1 leaves
    room for a step function with a modest number of levels (a share near 1 needs dozens).
    ``feasible=False``: the same targets with tau2 lowered to share / f, f in [1.001, 3], so the
    Hermite share is f > 1: no function of a Gaussian, hence no step function, can have these
    d1, d2 and this variance (see :func:`hermite_share`). Shrinks to one tanh layer at tau0 = 1.
    """
    depth = draw(st.integers(1, max_depth))
    acts = [draw(st.sampled_from(_TARGET_ACTS)) for _ in range(depth)]
    tau0 = draw(st.sampled_from(_TARGET_TAUS))
    c = _chain_last(tuple(acts), tau0)
    share = hermite_share(c.d1, c.d2, c.tau2_next, c.tau)
    source = f"last layer of {','.join(acts)} at tau0={tau0}"
    if feasible:
        assume(1e-6 < share <= max_share)
        return ActivationTarget(c.d1, c.d2, c.d3, c.tau2_next, c.tau, source)
    assume(share > 1e-6)
    f = draw(st.floats(1.001, 3.0))
    return ActivationTarget(c.d1, c.d2, c.d3, c.tau2_next * share / f, c.tau,
                            f"{source}, tau2 lowered to Hermite share {f:.3g} > 1")


_CHAIN_CACHE: dict = {}


def _chain_last(acts: tuple, tau0: float):
    from ntk import tau_chain

    key = (acts, tau0)
    if key not in _CHAIN_CACHE:
        _CHAIN_CACHE[key] = tau_chain(list(acts), tau0)[-1]
    return _CHAIN_CACHE[key]


@st.composite
def weight_laws(draw, heavy_tails: bool = True):
    """Weight laws (``ntk.WeightLaw``) of mean 0 and variance 1 from ``ntk.weights.LAWS``.

    gaussian, rademacher, uniform, ternary with sparsity eps in [0, 0.9] (the excess kurtosis
    1/(1 - eps) - 3 stays <= 7) and Student-t scaled to unit variance with nu in [4.5, 30]
    (finite kurtosis), or with ``heavy_tails=True`` also nu in [2.5, 4] (infinite fourth
    moment, still unit variance; nu -> 2 would make it infinite). Shrinks to gaussian.
    """
    from ntk import parse_weight_law

    name = draw(st.sampled_from(["gaussian", "rademacher", "uniform", "ternary", "student"]))
    if name == "ternary":
        return parse_weight_law(f"ternary:{draw(st.floats(0.0, 0.9))!r}")
    if name == "student":
        lo = 2.5 if heavy_tails else 4.5
        return parse_weight_law(f"student:{draw(st.floats(lo, 30.0))!r}")
    return parse_weight_law(name)


@_dataclass(frozen=True, eq=False)
class SymmetricOperator:
    """A matrix-free symmetric operator H = Q diag(eigenvalues) Q^T of size ``n``.

    ``matvec(v)`` applies it to a vector (shape (n,)) or to the columns of an (n, m) array;
    ``eigenvalues`` are ascending, with their multiplicities; ``trace`` is their sum;
    ``kind`` says how the spectrum was drawn.
    """

    n: int
    eigenvalues: np.ndarray
    kind: str
    _basis: np.ndarray

    def matvec(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        lam = self.eigenvalues if v.ndim == 1 else self.eigenvalues[:, None]
        return self._basis @ (lam * (self._basis.T @ v))

    @property
    def trace(self) -> float:
        return float(np.sum(self.eigenvalues))

    def __repr__(self) -> str:
        return (f"SymmetricOperator(n={self.n}, kind={self.kind!r}, "
                f"eigenvalues={np.array2string(self.eigenvalues, precision=4)})")


def symmetric_operator(eigenvalues, seed: int | None = 0, kind: str = "given"
                       ) -> SymmetricOperator:
    """The operator with the given spectrum in a random orthonormal basis (Haar, from
    ``seed``), or in the standard basis (diagonal) for ``seed=None``."""
    lam = np.sort(np.asarray(eigenvalues, dtype=float))
    n = lam.size
    if seed is None:
        Q = np.eye(n)
    else:
        Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
        Q = Q * np.where(np.diag(R) < 0, -1.0, 1.0)
    return SymmetricOperator(n, lam, kind, Q)



@st.composite
def symmetric_operators(draw, min_n: int = 1, max_n: int = 40):
    """Matrix-free symmetric operators (:class:`SymmetricOperator`) with a known spectrum.

    n in [min_n, max_n]; the spectrum is one of: ``distinct`` (values in [-10, 10] rounded
    to 0.001 so they read easily), ``clustered`` (2 or 3 centres in [-10, 10], each value
    within 1e-6 of its centre: hard for Lanczos to separate), ``degenerate`` (2 or 3 distinct
    values, each repeated), ``outliers`` (a bulk in [-1, 1] plus 1 to 3 values in [5, 50], as
    a Hessian), or ``definite`` (values in [0.1, 10]: trace far from 0, so a wrong scale in a
    trace estimator shows). The basis is Haar-random from a drawn seed, or the standard basis
    (diagonal operator; Rademacher probes are then exact). Values stay within 50 so absolute
    tolerances are meaningful. Shrinks to small n, a diagonal operator, few distinct values.
    """
    n = draw(st.integers(min_n, max_n))
    kind = draw(st.sampled_from(["definite", "distinct", "degenerate", "clustered", "outliers"]))
    seed = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "definite":
        lam = np.round(rng.uniform(0.1, 10.0, n), 3)
    elif kind == "distinct":
        lam = np.round(rng.uniform(-10.0, 10.0, n), 3)
    elif kind in ("degenerate", "clustered"):
        centres = np.round(rng.uniform(-10.0, 10.0, draw(st.integers(2, 3))), 1)
        lam = centres[rng.integers(0, centres.size, n)]
        if kind == "clustered":
            lam = lam + rng.uniform(-1e-6, 1e-6, n)
    else:
        m = min(n, draw(st.integers(1, 3)))
        lam = np.concatenate([np.round(rng.uniform(5.0, 50.0, m), 2),
                              rng.uniform(-1.0, 1.0, n - m)])
    return symmetric_operator(lam, seed, kind)

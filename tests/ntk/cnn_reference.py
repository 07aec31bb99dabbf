"""An independent reference for the exact CNN kernels: dense position-pair tensors.

Everything is held as full (n, H, W, n, H, W) tensors over (image, position) pairs and every
step of ``../shared/spec/cnn-kernels.md`` is written out literally: the window average as k^2
shifted copies of a padded tensor, pooling as a reshape-mean, the bivariate maps in closed form
(relu arc-cosine, erf arcsin, sin/cos exponentials, sign arcsin) or as a 1-D adaptive integral
(``scipy.integrate.quad``) over an exact inner Gaussian expectation (gelu, step functions).
No code of ``ntk`` is used beyond the architecture's bookkeeping. Only for tiny inputs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

from ntk.cnn_architecture import ConvArchitecture


def _window(T: np.ndarray, arch: ConvArchitecture) -> np.ndarray:
    """A[T](a, b) = (1/k^2) sum_d T(a + d, b + d) on a (n, H, W, n, H, W) tensor."""
    k = arch.filter_size
    n, H, W = T.shape[:3]
    if arch.padding == "valid":
        h, w = H - k + 1, W - k + 1
        out = np.zeros((n, h, w, n, h, w))
        for di in range(k):
            for dj in range(k):
                out += T[:, di:di + h, dj:dj + w, :, di:di + h, dj:dj + w]
        return out / k**2
    out = np.zeros_like(T)
    lo = (k - 1) // 2
    for di in range(-lo, k - lo):
        for dj in range(-lo, k - lo):
            if arch.padding == "circular":
                out += np.roll(T, (-di, -dj, -di, -dj), axis=(1, 2, 4, 5))
            else:
                pad = np.pad(T, ((0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0),
                                 (lo, k - 1 - lo), (lo, k - 1 - lo)))
                out += pad[:, lo + di:lo + di + H, lo + dj:lo + dj + W, :,
                           lo + di:lo + di + H, lo + dj:lo + dj + W]
    return out / k**2


def _pool(T: np.ndarray) -> np.ndarray:
    n, H, W = T.shape[:3]
    return T.reshape(n, H // 2, 2, W // 2, 2, n, H // 2, 2, W // 2, 2).mean(axis=(2, 4, 7, 9))


def _readout(T: np.ndarray, readout: str) -> np.ndarray:
    n, H, W = T.shape[:3]
    flat = T.reshape(n, H * W, n, H * W)
    if readout == "flatten":
        return np.einsum("iaja->ij", flat) / (H * W)
    return flat.mean(axis=(1, 3))


def reference_kernels(images, arch: ConvArchitecture, maps, *, ntk: bool = True
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """CK and NTK of the spec's recursion with the given per-layer bivariate maps.

    Args:
        images: (n, C, H, W).
        arch: the architecture.
        maps: one callable per layer, ``(q1, q2, c) -> (K, Kd)`` on arrays (Kd may be None
            when ``ntk`` is false).
    """
    x = np.asarray(images, dtype=float)
    C = x.shape[1]
    K = np.einsum("iahw,jaxy->ihwjxy", x, x) / C
    N = theta = None
    for layer, bivariate in enumerate(maps, start=1):
        S = _window(K, arch)
        if ntk:
            theta = S if layer == 1 else _window(N, arch)
        shape = S.shape
        q = np.einsum("ihwihw->ihw", S).reshape(-1)
        S2 = S.reshape(q.size, q.size)
        K, Kd = bivariate(q[:, None] * np.ones_like(S2), q[None, :] * np.ones_like(S2), S2)
        K = K.reshape(shape)
        if ntk:
            N = K + Kd.reshape(shape) * theta
        if layer in arch.pool:
            K = _pool(K)
            if ntk:
                N = _pool(N)
    return _readout(K, arch.readout), (_readout(N, arch.readout) if ntk else None)


def _angle(q1, q2, c):
    """theta = arccos(rho), with rho = 0 where a variance is 0."""
    prod = np.sqrt(q1 * q2)
    rho = np.divide(c, prod, out=np.zeros_like(c), where=prod > 0)
    return np.arccos(np.clip(rho, -1.0, 1.0)), prod


def relu_map(q1, q2, c):
    """Arc-cosine kernel of degree 1 and its derivative kernel."""
    theta, prod = _angle(q1, q2, c)
    K = prod / (2 * math.pi) * (np.sin(theta) + (math.pi - theta) * np.cos(theta))
    Kd = np.where(prod > 0, (math.pi - theta) / (2 * math.pi), 0.0)
    return K, Kd


def erf_map(q1, q2, c):
    """E[erf(u) erf(v)] = (2/pi) arcsin(2c / sqrt((1 + 2q1)(1 + 2q2))), and the derivative
    kernel (4/pi) / sqrt((1 + 2q1)(1 + 2q2) - 4c^2)."""
    a, b = 1 + 2 * q1, 1 + 2 * q2
    K = 2 / math.pi * np.arcsin(2 * c / np.sqrt(a * b))
    Kd = 4 / math.pi / np.sqrt(a * b - 4 * c * c)
    return K, Kd


def sin_map(q1, q2, c):
    """E[sin u sin v] = exp(-(q1 + q2)/2) sinh c; derivative E[cos u cos v] with cosh."""
    e = np.exp(-(q1 + q2) / 2)
    return e * np.sinh(c), e * np.cosh(c)


def sign_map(q1, q2, c):
    """E[sign u sign v] = (2/pi) arcsin(rho); the catalogue's sign(0) = 1 where a variance is
    0 (then E[sign(0) sign(v)] = E[sign v] = 0 unless v = 0 too). CK only."""
    theta, prod = _angle(q1, q2, c)
    K = np.where(prod > 0, 1 - 2 * theta / math.pi, np.where((q1 == 0) & (q2 == 0), 1.0, 0.0))
    return K, None


def _inner_step(thresholds, levels, y, s):
    """E[step(y + s eta)], eta ~ N(0, 1) (s >= 0)."""
    if s == 0:
        return levels[np.searchsorted(thresholds, y, side="right")]
    cdf = [0.0, *special.ndtr((np.asarray(thresholds) - y) / s), 1.0]
    return sum(v * (cdf[t + 1] - cdf[t]) for t, v in enumerate(levels))


def _inner_gelu(y, s):
    """E[gelu(y + s eta)] and E[gelu'(y + s eta)] in closed form (gelu = x Phi(x))."""
    r = math.sqrt(1 + s * s)
    z = y / r
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = special.ndtr(z)
    return y * cdf + s * s / r * pdf, cdf + y * pdf / r**3


def _pair_integral(f, inner, q1, q2, c, points):
    """E[f(u) inner(v | u)] by an adaptive outer integral over u = sqrt(q1) xi."""
    if q1 == 0:
        return f(0.0) * inner(0.0, math.sqrt(q2))
    s1 = math.sqrt(q1)
    alpha = c / s1                       # v = alpha xi + beta eta
    # (q1 q2 - c^2) / q1 rather than q2 - alpha^2: exactly 0 for duplicates (c = q1 = q2).
    beta = math.sqrt(max(q1 * q2 - c * c, 0.0) / q1)
    cuts = [p / s1 for p in points]
    if alpha != 0:
        # Around each kink of the inner expectation, at b / alpha, a transition layer of width
        # beta / |alpha|: cut there at several multiples of its width.
        width = beta / abs(alpha)
        cuts += [p / alpha + f * width for p in points for f in (0, -16, -4, -1, 1, 4, 16)]
    cuts = [t for t in sorted(float(t) for t in cuts) if abs(t) < 30]
    # Cuts a rounding error apart (b / sqrt(q1) and b / alpha of a duplicate pair) would leave
    # QUADPACK an interval of width 1e-16 holding the jump: keep one of them.
    cuts = [t for k, t in enumerate(cuts) if k == 0 or t - cuts[k - 1] > 1e-9]

    def integrand(xi):
        return f(s1 * xi) * inner(alpha * xi, beta) * math.exp(-0.5 * xi * xi)

    value, _ = integrate.quad(integrand, -30, 30, points=cuts or None, limit=400,
                              epsabs=1e-14, epsrel=1e-13)
    return value / math.sqrt(2 * math.pi)


def step_map(thresholds, levels):
    """Bivariate map of a step function by :func:`_pair_integral` (CK only)."""
    th = np.asarray(thresholds, dtype=float)
    lv = np.asarray(levels, dtype=float)

    def f(u):
        return lv[np.searchsorted(th, u, side="right")]

    def inner(y, s):
        return _inner_step(th, lv, y, s)

    def bivariate(q1, q2, c):
        K = np.vectorize(lambda a, b, v: _pair_integral(f, inner, a, b, v, th))(q1, q2, c)
        return K, None

    return bivariate


def gelu_map(q1, q2, c):
    """Bivariate map of gelu and its derivative kernel by :func:`_pair_integral`."""
    def gelu(u):
        return u * special.ndtr(u)

    def dgelu(u):
        return special.ndtr(u) + u * math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)

    def one(a, b, v):
        return (_pair_integral(gelu, lambda y, s: _inner_gelu(y, s)[0], a, b, v, ()),
                _pair_integral(dgelu, lambda y, s: _inner_gelu(y, s)[1], a, b, v, ()))

    K, Kd = np.vectorize(one)(q1, q2, c)
    return K, Kd

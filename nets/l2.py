"""L2 compression of a trained model (seed 002): quantization-aware fine-tuning under a rate term.

Every trainable Dense/Conv2d weight tensor W_l (n_l entries) gets a step delta_l > 0 and a dead
zone theta_l >= 0 (``solvers.unified_quantizer``): its stored symbols are
q_l = sign(W) max(0, rint(|W| / delta_l - theta_l)) and the network runs on
W_hat_l = delta_l (q_l + sign(q_l) theta_l). Fine-tuning minimises

    J = task loss(W_hat) + lam * sum_l n_l H_l / N,      N = sum_l n_l,

where H_l is the kernel-relaxed entropy of q_l in bits per weight, so the second term is the
model's rate in bits per weight and lam trades one bit per weight against lam nats of loss.

* Forward: the network sees W_hat; the float latent weights W are kept apart.
* Backward: the rounding is straight-through: dJ/dW = dL/dW_hat + lam n_l/N dH_l/dW, and
  dL/ddelta, dL/dtheta by ``solvers.unified_quantizer.ste_gradients``. The entropy term of a
  step uses ``entropy_samples`` entries of W_l drawn with replacement (all of them for smaller
  layers): its gradient, scattered back to the drawn entries, is an unbiased estimate of the
  full one, at a cost independent of the layer size.
* Adam (lr) on the latent weights and the biases, a second Adam (lr_quant) on log(delta_l) (a
  step moves delta by a relative amount) and on theta_l, projected onto theta >= 0 after every
  step.
* Start: delta_l = max|W_l| / (2^(b - 1) - 1), the symmetric b-bit grid (b = initial_bits), and
  theta_l = initial_theta.
* End: delta_l, theta_l are rounded to float32 (the stored values), W is quantized with them,
  the symbols are range coded by ``solvers.entropy.encode_integers``, and the returned model
  holds exactly the weights a decoder rebuilds from the codes.

Storage rule (what ``coded_bytes`` counts): per compressed layer, the bytes written by
``encode_integers`` for its symbols (header and CRC included) + 8 bytes for delta and theta
(float32) + 4 bytes per bias (float32); every other stored array (frozen layers) at 4 bytes per
entry. ``float_bytes`` counts 4 bytes per entry of every stored array (weights and biases), and
``ratio = float_bytes / coded_bytes``. Every float the returned model keeps is rounded to
float32, so these counts are exact for it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np

from nets.layers import Conv2d, Dense
from nets.losses import LOSSES
from nets.model import Sequential
from nets.optim import Adam
from ntk.progress import progress_bar
from ntklc.errors import InputError
from solvers.entropy import decode_integers, empirical_entropy_bits, encode_integers
from solvers.unified_quantizer import (
    dequantize,
    fake_quantize,
    quantize,
    soft_entropy,
    ste_gradients,
)

__all__ = ["RULE", "L2Layer", "L2Result", "l2_compress"]

_FLOAT_BYTES = 4
_PARAM_BYTES = 2 * _FLOAT_BYTES  # delta and theta, float32

#: The storage rule in one sentence (stored in every result).
RULE = ("coded = per compressed layer: bytes of solvers.entropy.encode_integers(symbols) "
        "(header, range code, CRC) + 8 bytes for delta and theta (float32) + 4 bytes per bias "
        "(float32); other stored arrays 4 bytes per entry. float = 4 bytes per entry of every "
        "stored array (weights and biases). ratio = float / coded.")


@dataclass(frozen=True)
class L2Layer:
    """One compressed weight tensor.

    Attributes:
        index: position of the layer in ``model.layers``.
        symbols: the integer symbols q, int64 of the shape of W.
        delta: step (a float32 value).
        theta: dead zone in steps (a float32 value).
        code: ``encode_integers(symbols)``.
        bias_count: entries of the layer's float32 bias.
    """

    index: int
    symbols: np.ndarray
    delta: float
    theta: float
    code: bytes
    bias_count: int

    @property
    def n_weights(self) -> int:
        """Entries of W."""
        return int(self.symbols.size)

    @property
    def coded_bytes(self) -> int:
        """Stored bytes: the code + delta, theta + the float32 bias."""
        return len(self.code) + _PARAM_BYTES + _FLOAT_BYTES * self.bias_count

    @property
    def bits_per_weight(self) -> float:
        """8 len(code) / n: coded bits per weight, header and CRC included."""
        return 8 * len(self.code) / self.n_weights

    @property
    def entropy_bits_per_weight(self) -> float:
        """Empirical entropy of the symbols per weight, -sum_k (n_k / n) log2(n_k / n)."""
        return empirical_entropy_bits(self.symbols) / self.n_weights

    @property
    def sparsity(self) -> float:
        """Fraction of pruned (zero) symbols."""
        return float(np.count_nonzero(self.symbols == 0)) / self.n_weights

    @property
    def distinct(self) -> int:
        """Number of distinct symbols."""
        return int(np.unique(self.symbols).size)


@dataclass(frozen=True)
class L2Result:
    """Outcome of :func:`l2_compress`.

    Attributes:
        model: the compressed model: dequantized weights, float32 biases.
        layers: the compressed layers, input side first.
        float_bytes: size of the float32 model (storage rule of the module docstring).
        coded_bytes: size of the compressed model.
        history: per-epoch lists ``loss`` (task loss) and ``accuracy`` (running, on the
            quantized network), ``rate_bits`` (relaxed entropy, bits per weight, mean over
            the epoch's steps; not computed, 0, when lam = 0), ``objective`` (loss + lam
            rate_bits), ``entropy_bits`` (empirical entropy per weight of the symbols at the
            end of the epoch), ``deltas`` and ``thetas`` (per layer, end of epoch),
            ``seconds``.
        settings: the arguments of the call.
        seconds: wall time of the call.
        rule: the storage rule.
    """

    model: Sequential
    layers: tuple[L2Layer, ...]
    float_bytes: int
    coded_bytes: int
    history: dict
    settings: dict
    seconds: float
    rule: str = field(default=RULE)

    @property
    def ratio(self) -> float:
        """float_bytes / coded_bytes."""
        return self.float_bytes / self.coded_bytes

    @property
    def n_weights(self) -> int:
        """Weights in the compressed layers."""
        return sum(layer.n_weights for layer in self.layers)

    @property
    def bits_per_weight(self) -> float:
        """Coded bits of all symbol codes (headers and CRCs included) per compressed weight."""
        return 8 * sum(len(layer.code) for layer in self.layers) / self.n_weights

    @property
    def entropy_bits_per_weight(self) -> float:
        """Empirical entropy of the symbols (each layer's own frequencies) per weight."""
        return sum(empirical_entropy_bits(layer.symbols) for layer in self.layers) \
            / self.n_weights

    def decode(self) -> Sequential:
        """The model rebuilt from the codes, deltas, thetas and biases alone.

        W_l = dequantize(decode_integers(code_l), delta_l, theta_l) in the model's dtype;
        every other array is taken from :attr:`model`. Equal bit for bit to :attr:`model`.
        """
        out = copy.deepcopy(self.model)
        for layer in self.layers:
            target = out.layers[layer.index]
            target.W[...] = dequantize(decode_integers(layer.code), layer.delta, layer.theta,
                                       dtype=target.W.dtype)
        return out

    def summary(self) -> dict:
        """JSON-ready numbers: sizes, ratio, bits per weight, per-layer details, history."""
        return {
            "float_bytes": self.float_bytes, "coded_bytes": self.coded_bytes,
            "ratio": self.ratio, "bits_per_weight": self.bits_per_weight,
            "entropy_bits_per_weight": self.entropy_bits_per_weight,
            "seconds": self.seconds, "settings": dict(self.settings), "rule": self.rule,
            "layers": [{"index": la.index, "shape": list(la.symbols.shape),
                        "delta": la.delta, "theta": la.theta, "code_bytes": len(la.code),
                        "coded_bytes": la.coded_bytes, "bits_per_weight": la.bits_per_weight,
                        "entropy_bits_per_weight": la.entropy_bits_per_weight,
                        "sparsity": la.sparsity, "distinct": la.distinct}
                       for la in self.layers],
            "history": {k: [list(map(float, v)) if isinstance(v, list) else float(v)
                            for v in values] for k, values in self.history.items()},
        }


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive(name: str, value, allow_zero: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {bound}, got {value}")
    return value


def _as_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy.random.Generator or an integer seed, got {rng!r}")


def l2_compress(model: Sequential, X: np.ndarray, y: np.ndarray, *, lam: float = 0.05,
                epochs: int = 1, lr: float = 1e-4, batch_size: int = 128,
                rng: np.random.Generator | int = 0, initial_bits: int = 4,
                initial_theta: float = 0.0, learn_theta: bool = True,
                lr_quant: float = 3e-3, kernel_width: float = 0.4,
                entropy_samples: int = 2**15, progress: bool = True) -> L2Result:
    """Fine-tune a trained model into an entropy-coded L2 model (module docstring).

    The caller's model is not modified: the work is done on a deep copy.

    Args:
        model: a trained ``Sequential`` with at least one trainable Dense or Conv2d layer.
        X: (n, ...) inputs; y: (n,) labels (or (n, c) targets for an ``mse`` model).
        lam: rate weight lam >= 0 (task-loss units per bit per weight); 0 is plain
            quantization-aware training.
        epochs, batch_size: positive integers.
        lr: Adam learning rate of the latent weights and biases.
        rng: generator or seed of the shuffling and of the entropy samples.
        initial_bits: b in [2, 16]: delta starts at max|W| / (2^(b-1) - 1).
        initial_theta: theta's start (in steps), >= 0.
        learn_theta: train theta (else it stays at ``initial_theta``).
        lr_quant: Adam learning rate of log(delta) and theta.
        kernel_width: width s (in steps) of the entropy relaxation's Gaussian kernel.
        entropy_samples: entries per layer and step in the entropy estimate.
        progress: tqdm bar on stderr.

    Returns:
        An :class:`L2Result`.

    Raises:
        InputError: lam < 0, a model without trainable weight layers, X and y of different
            lengths or no samples, or any other argument out of range.
    """
    start = time.perf_counter()
    if not isinstance(model, Sequential):
        raise InputError(f"model must be a nets Sequential, got {type(model).__name__}")
    lam = _positive("lam", lam, allow_zero=True)
    epochs = _positive_int("epochs", epochs)
    batch_size = _positive_int("batch_size", batch_size)
    entropy_samples = _positive_int("entropy_samples", entropy_samples)
    lr, lr_quant = _positive("lr", lr), _positive("lr_quant", lr_quant)
    kernel_width = _positive("kernel_width", kernel_width)
    initial_theta = _positive("initial_theta", initial_theta, allow_zero=True)
    if isinstance(initial_bits, bool) or not isinstance(initial_bits, (int, np.integer)) \
            or not 2 <= initial_bits <= 16:
        raise InputError(f"initial_bits must be an integer in [2, 16], got {initial_bits!r}")
    X = np.asarray(X)
    y = np.asarray(y)
    n = X.shape[0] if X.ndim else 0
    if n == 0:
        raise InputError("l2_compress needs at least one sample")
    if y.shape[:1] != (n,):
        raise InputError(f"{n} samples but targets of shape {y.shape}")
    rng = _as_rng(rng)
    settings = {"lam": lam, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                "initial_bits": int(initial_bits), "initial_theta": initial_theta,
                "learn_theta": bool(learn_theta), "lr_quant": lr_quant,
                "kernel_width": kernel_width, "entropy_samples": entropy_samples}

    net = copy.deepcopy(model)
    indices = [i for i, layer in enumerate(net.layers)
               if isinstance(layer, (Dense, Conv2d)) and layer.trainable]
    if not indices:
        raise InputError("the model has no trainable Dense or Conv2d layer to compress")
    layers = [net.layers[i] for i in indices]
    latent = [layer.W.copy() for layer in layers]
    sizes = np.array([w.size for w in latent], dtype=np.float64)
    # Rate weights lam n_l / N: the rate term is the model's bits per weight.
    rate_weights = lam * sizes / sizes.sum()
    levels = 2 ** (int(initial_bits) - 1) - 1
    scales = [float(np.max(np.abs(w))) for w in latent]
    log_delta = np.log([s / levels if s > 0 else 1.0 for s in scales])
    theta = np.full(len(layers), initial_theta)
    weight_opt, quant_opt = Adam(lr=lr), Adam(lr=lr_quant)
    quant_params = [log_delta, theta] if learn_theta else [log_delta]
    loss_fn = LOSSES[net.loss]
    history: dict[str, list] = {key: [] for key in (
        "loss", "accuracy", "rate_bits", "objective", "entropy_bits", "deltas", "thetas",
        "seconds")}

    for epoch in range(epochs):
        order = rng.permutation(n)
        total = rate_total = 0.0
        hits = steps = 0
        epoch_start = time.perf_counter()
        with progress_bar(total=n, desc=f"L2 epoch {epoch + 1}/{epochs}", unit="sample",
                          disable=not progress) as bar:
            for b0 in range(0, n, batch_size):
                idx = order[b0:b0 + batch_size]
                deltas = np.exp(log_delta)
                for layer, w, d, t in zip(layers, latent, deltas, theta, strict=True):
                    fake_quantize(w, d, t, out=layer.W)
                out = net.forward(X[idx], train=True)
                loss, grad = loss_fn(out, y[idx])
                net.backward(grad)
                g_log_delta = np.zeros(len(layers))
                g_theta = np.zeros(len(layers))
                rate = 0.0
                for k, (layer, w) in enumerate(zip(layers, latent, strict=True)):
                    g_d, g_t = ste_gradients(w, deltas[k], theta[k], layer.dW)
                    if rate_weights[k] > 0:
                        e_bits, e_d, e_t = _rate_gradient(w, deltas[k], theta[k], layer.dW,
                                                          rate_weights[k], kernel_width,
                                                          entropy_samples, rng)
                        rate += sizes[k] * e_bits
                        g_d += rate_weights[k] * e_d
                        g_t += rate_weights[k] * e_t
                    # d/dlog(delta) = delta d/ddelta.
                    g_log_delta[k] = g_d * deltas[k]
                    g_theta[k] = g_t
                # layer.dW now holds dJ/dW for the latent weights (straight-through).
                weight_opt.step(latent + [layer.b for layer in layers],
                                [layer.dW for layer in layers] + [layer.db for layer in layers])
                quant_opt.step(quant_params, [g_log_delta, g_theta][:len(quant_params)])
                np.maximum(theta, 0.0, out=theta)
                rate /= sizes.sum()
                total += loss * idx.size
                rate_total += rate
                steps += 1
                labels = y[idx] if y.ndim == 1 else np.argmax(y[idx], axis=1)
                hits += int(np.count_nonzero(np.argmax(out, axis=1) == labels))
                bar.update(idx.size)
                bar.set_postfix(loss=f"{total / (b0 + idx.size):.4f}",
                                bits=f"{rate:.3f}", refresh=False)
        deltas = np.exp(log_delta)
        entropy = sum(empirical_entropy_bits(quantize(w, d, t))
                      for w, d, t in zip(latent, deltas, theta, strict=True))
        history["loss"].append(total / n)
        history["accuracy"].append(hits / n)
        history["rate_bits"].append(rate_total / steps)
        history["objective"].append(total / n + lam * rate_total / steps)
        history["entropy_bits"].append(entropy / sizes.sum())
        history["deltas"].append(deltas.tolist())
        history["thetas"].append(theta.tolist())
        history["seconds"].append(time.perf_counter() - epoch_start)

    compressed = []
    for i, layer, w, d, t in zip(indices, layers, latent, np.exp(log_delta), theta,
                                 strict=True):
        # The stored parameters are float32; quantize with exactly those values.
        d32, t32 = float(np.float32(d)), float(np.float32(t))
        q = quantize(w, d32, t32)
        layer.W[...] = dequantize(q, d32, t32, dtype=layer.W.dtype)
        compressed.append(L2Layer(index=i, symbols=q, delta=d32, theta=t32,
                                  code=encode_integers(q), bias_count=layer.b.size))
    done = set(indices)
    float_bytes = coded_bytes = 0
    for i, layer in enumerate(net.layers):
        for name, a in layer.arrays().items():
            float_bytes += _FLOAT_BYTES * a.size
            if i not in done or name != "W":
                # Stored as float32: round the kept floats so the model is what is counted.
                a[...] = a.astype(np.float32)
                coded_bytes += _FLOAT_BYTES * a.size
    coded_bytes += sum(len(c.code) + _PARAM_BYTES for c in compressed)
    return L2Result(model=net, layers=tuple(compressed), float_bytes=float_bytes,
                    coded_bytes=coded_bytes, history=history, settings=settings,
                    seconds=time.perf_counter() - start)


def _rate_gradient(w: np.ndarray, delta: float, theta: float, grad: np.ndarray,
                   weight: float, width: float, samples: int, rng: np.random.Generator
                   ) -> tuple[float, float, float]:
    """Add weight * dH/dW into ``grad`` (in place); return H, dH/ddelta, dH/dtheta.

    H is estimated on ``samples`` entries drawn with replacement when the tensor is larger;
    scattering the sample's gradient (each entry's term carries 1/samples) to the drawn
    positions gives the full gradient (1/n per entry) in expectation.
    """
    flat, g = w.reshape(-1), grad.reshape(-1)
    if flat.size <= samples:
        e = soft_entropy(flat, delta, theta, width)
        g += (weight * e.grad_w).astype(g.dtype)
    else:
        drawn = rng.integers(0, flat.size, size=samples)
        e = soft_entropy(flat[drawn], delta, theta, width)
        np.add.at(g, drawn, (weight * e.grad_w).astype(g.dtype))
    return e.bits, e.grad_delta, e.grad_theta

"""NTK-LC solvers: ternarization equations, knapsack, rank search, entropy models and coding."""

from solvers.entropy import (
    decode_ternary,
    empirical_entropy_bits,
    encode_ternary,
    ternary_entropy_bound,
)

__all__ = [
    "decode_ternary",
    "empirical_entropy_bits",
    "encode_ternary",
    "ternary_entropy_bound",
]

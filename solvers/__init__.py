"""NTK-LC solvers: ternarization equations, knapsack, rank search, entropy models and coding."""

from solvers.entropy import (
    decode_ternary,
    empirical_entropy_bits,
    encode_ternary,
    ternary_entropy_bound,
)
from solvers.hessian import SpectralDensity, extreme_eigenpairs, hutchinson_trace, slq_density
from solvers.knapsack import KnapsackSolution, grouped_knapsack, grouped_knapsack_milp
from solvers.quantizer import LevelStructure, min_variance, optimise_thresholds
from solvers.rank import RankSearch, rank_profile, search_rank
from solvers.steps import StepFunction, level_projections, step_constants
from solvers.ternarize import (
    FAMILIES,
    CompressionResult,
    LayerSolution,
    compress_network,
    solve_hidden_layer,
    solve_output_layer,
)

__all__ = [
    "FAMILIES",
    "CompressionResult",
    "KnapsackSolution",
    "LayerSolution",
    "LevelStructure",
    "RankSearch",
    "SpectralDensity",
    "StepFunction",
    "compress_network",
    "decode_ternary",
    "empirical_entropy_bits",
    "encode_ternary",
    "extreme_eigenpairs",
    "grouped_knapsack",
    "grouped_knapsack_milp",
    "hutchinson_trace",
    "level_projections",
    "min_variance",
    "optimise_thresholds",
    "rank_profile",
    "search_rank",
    "slq_density",
    "solve_hidden_layer",
    "solve_output_layer",
    "step_constants",
    "ternary_entropy_bound",
]

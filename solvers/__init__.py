"""NTK-LC solvers: ternarization equations, knapsack, rank search, entropy models and coding."""

from solvers.cnn_compression import cnn_input_scale, compress_cnn
from solvers.entropy import (
    decode_integers,
    decode_ternary,
    empirical_entropy_bits,
    encode_integers,
    encode_ternary,
    ternary_entropy_bound,
)
from solvers.hermite_steps import hermite_step
from solvers.hessian import (
    SpectralDensity,
    extreme_eigenpairs,
    hutchinson_trace,
    slq_density,
    top_ritz_pairs,
)
from solvers.knapsack import (
    KnapsackSolution,
    allocate_bits,
    grouped_knapsack,
    grouped_knapsack_milp,
)
from solvers.quantizer import LevelStructure, min_variance, optimise_thresholds
from solvers.rank import RankSearch, rank_profile, search_rank
from solvers.rounding import (
    QuantizedTensor,
    grid_scale,
    quantize_gradient_opposed,
    quantize_nearest,
    quantize_steered,
)
from solvers.steps import StepFunction, level_projections, step_constants
from solvers.ternarize import (
    FAMILIES,
    CompressionResult,
    LayerSolution,
    compress_network,
    solve_hidden_layer,
    solve_output_layer,
)
from solvers.unified_quantizer import (
    SoftEntropy,
    dead_zone,
    fake_quantize,
    soft_entropy,
    ste_gradients,
)

__all__ = [
    "FAMILIES",
    "CompressionResult",
    "KnapsackSolution",
    "LayerSolution",
    "LevelStructure",
    "QuantizedTensor",
    "RankSearch",
    "SoftEntropy",
    "SpectralDensity",
    "StepFunction",
    "allocate_bits",
    "cnn_input_scale",
    "compress_cnn",
    "compress_network",
    "dead_zone",
    "decode_integers",
    "decode_ternary",
    "empirical_entropy_bits",
    "encode_integers",
    "encode_ternary",
    "extreme_eigenpairs",
    "fake_quantize",
    "grid_scale",
    "grouped_knapsack",
    "grouped_knapsack_milp",
    "hermite_step",
    "hutchinson_trace",
    "level_projections",
    "min_variance",
    "optimise_thresholds",
    "quantize_gradient_opposed",
    "quantize_nearest",
    "quantize_steered",
    "rank_profile",
    "search_rank",
    "slq_density",
    "soft_entropy",
    "solve_hidden_layer",
    "solve_output_layer",
    "ste_gradients",
    "step_constants",
    "ternary_entropy_bound",
    "top_ritz_pairs",
]

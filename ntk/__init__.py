"""Activations, activation constants, CK/NTK recursions and equivalents, exact and empirical
kernels."""

# The submodules load on first use of a name (PEP 562), so that `import ntk` or
# `from ntk import activation` does not pull in SymPy, mpmath, Numba and SciPy.
import importlib

_EXPORTS = {
    "CATALOGUE": "ntk.activations",
    "Activation": "ntk.activations",
    "activation": "ntk.activations",
    "parse_activations": "ntk.activations",
    "step_activation": "ntk.activations",
    "AngularKernel": "ntk.angular",
    "angular_kernel": "ntk.angular",
    "PairMoments": "ntk.bivariate",
    "bivariate_expectation": "ntk.bivariate",
    "pair_moments": "ntk.bivariate",
    "bvn_upper_array": "ntk.bvn",
    "PADDINGS": "ntk.cnn_architecture",
    "READOUTS": "ntk.cnn_architecture",
    "ConvArchitecture": "ntk.cnn_architecture",
    "cnn_equivalent": "ntk.cnn_equivalent",
    "CNNKernels": "ntk.cnn_exact",
    "CNNPlan": "ntk.cnn_exact",
    "cnn_kernels": "ntk.cnn_exact",
    "cnn_plan": "ntk.cnn_exact",
    "METHODS": "ntk.constants",
    "ActivationConstants": "ntk.constants",
    "activation_constants": "ntk.constants",
    "tau_chain": "ntk.constants",
    "EmpiricalKernels": "ntk.empirical",
    "empirical_kernels": "ntk.empirical",
    "network_kernels": "ntk.empirical",
    "CKLayer": "ntk.equivalents",
    "EquivalentOperator": "ntk.equivalents",
    "NTKLayer": "ntk.equivalents",
    "ck_coefficients": "ntk.equivalents",
    "ck_equivalent": "ntk.equivalents",
    "equivalent_kernel": "ntk.equivalents",
    "ntk_coefficients": "ntk.equivalents",
    "ntk_equivalent": "ntk.equivalents",
    "progress_bar": "ntk.progress",
    "ExactKernels": "ntk.exact",
    "exact_kernels": "ntk.exact",
    "hermite_coefficients": "ntk.exact",
    "FullyConnectedTiles": "ntk.tiles",
    "KernelPlan": "ntk.tiles",
    "kernel_matrix": "ntk.tiles",
    "kernel_plan": "ntk.tiles",
    "kernel_tile": "ntk.tiles",
    "gaussian_rule": "ntk.quadrature",
    "gaussian_rules": "ntk.quadrature",
    "LAWS": "ntk.weights",
    "WeightLaw": "ntk.weights",
    "parse_weight_law": "ntk.weights",
    "sample_weights": "ntk.weights",
}

__all__ = [
    "CATALOGUE",
    "LAWS",
    "METHODS",
    "PADDINGS",
    "READOUTS",
    "Activation",
    "ActivationConstants",
    "AngularKernel",
    "CKLayer",
    "CNNKernels",
    "CNNPlan",
    "ConvArchitecture",
    "EmpiricalKernels",
    "EquivalentOperator",
    "ExactKernels",
    "FullyConnectedTiles",
    "KernelPlan",
    "NTKLayer",
    "PairMoments",
    "WeightLaw",
    "activation",
    "activation_constants",
    "angular_kernel",
    "bivariate_expectation",
    "bvn_upper_array",
    "ck_coefficients",
    "ck_equivalent",
    "cnn_equivalent",
    "cnn_kernels",
    "cnn_plan",
    "empirical_kernels",
    "equivalent_kernel",
    "exact_kernels",
    "gaussian_rule",
    "gaussian_rules",
    "hermite_coefficients",
    "kernel_matrix",
    "kernel_plan",
    "kernel_tile",
    "network_kernels",
    "ntk_coefficients",
    "ntk_equivalent",
    "pair_moments",
    "parse_activations",
    "parse_weight_law",
    "progress_bar",
    "sample_weights",
    "step_activation",
    "tau_chain",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

"""Activations, activation constants, CK/NTK recursions and equivalents, exact and empirical
kernels."""

from ntk.activations import (
    CATALOGUE,
    Activation,
    activation,
    parse_activations,
    step_activation,
)
from ntk.bivariate import PairMoments, bivariate_expectation, pair_moments
from ntk.constants import METHODS, ActivationConstants, activation_constants, tau_chain
from ntk.empirical import EmpiricalKernels, empirical_kernels, network_kernels
from ntk.equivalents import (
    CKLayer,
    NTKLayer,
    ck_coefficients,
    ck_equivalent,
    equivalent_kernel,
    ntk_coefficients,
    ntk_equivalent,
)
from ntk.exact import ExactKernels, exact_kernels, hermite_coefficients
from ntk.quadrature import gaussian_rule, gaussian_rules
from ntk.weights import LAWS, WeightLaw, parse_weight_law, sample_weights

__all__ = [
    "CATALOGUE",
    "LAWS",
    "METHODS",
    "Activation",
    "ActivationConstants",
    "CKLayer",
    "EmpiricalKernels",
    "ExactKernels",
    "NTKLayer",
    "PairMoments",
    "WeightLaw",
    "activation",
    "activation_constants",
    "bivariate_expectation",
    "ck_coefficients",
    "ck_equivalent",
    "empirical_kernels",
    "equivalent_kernel",
    "exact_kernels",
    "gaussian_rule",
    "gaussian_rules",
    "hermite_coefficients",
    "network_kernels",
    "ntk_coefficients",
    "ntk_equivalent",
    "pair_moments",
    "parse_activations",
    "parse_weight_law",
    "sample_weights",
    "step_activation",
    "tau_chain",
]

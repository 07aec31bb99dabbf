"""Activations, activation constants, CK/NTK recursions and equivalents, exact and empirical
kernels."""

from ntk.activations import CATALOGUE, Activation, activation, parse_activations
from ntk.constants import METHODS, ActivationConstants, activation_constants, tau_chain
from ntk.quadrature import gaussian_rule, gaussian_rules

__all__ = [
    "CATALOGUE",
    "METHODS",
    "Activation",
    "ActivationConstants",
    "activation",
    "activation_constants",
    "gaussian_rule",
    "gaussian_rules",
    "parse_activations",
    "tau_chain",
]

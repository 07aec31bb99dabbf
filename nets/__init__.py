"""Networks on the CPU: compressed-network inference and memory accounting."""

from nets.compressed import CompressedNetwork, DenseNetwork, TernaryMatrix, sample_ternary_signs
from nets.memory import MemoryReport, memory_report

__all__ = [
    "CompressedNetwork",
    "DenseNetwork",
    "MemoryReport",
    "TernaryMatrix",
    "memory_report",
    "sample_ternary_signs",
]

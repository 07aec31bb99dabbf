"""Networks on the CPU: training engine, curvature, quantized and compressed models, memory."""

from nets.cnn_kernels import cnn_network_kernels, empirical_cnn_kernels
from nets.compressed import CompressedNetwork, DenseNetwork, TernaryMatrix, sample_ternary_signs
from nets.compressed_cnn import CompressedCNN, DenseCNN
from nets.curvature import DENSE_HESSIAN_MAX, LossCurvature
from nets.data import Dataset, as_float, find_dataset, load_dataset, read_idx
from nets.datasets import get_dataset_info
from nets.l2 import L2Layer, L2Result, l2_compress
from nets.layers import (
    Activation,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    Layer,
    MaxPool2d,
    init_weights,
)
from nets.losses import mse, one_hot, softmax_cross_entropy
from nets.memory import MemoryReport, memory_report
from nets.model import Sequential, mlp, small_cnn
from nets.optim import SGD, Adam, Optimizer
from nets.quantized import QuantizedModel, channel_axis, dense_bytes, weight_layers

__all__ = [
    "DENSE_HESSIAN_MAX",
    "SGD",
    "Activation",
    "Adam",
    "AvgPool2d",
    "CompressedCNN",
    "CompressedNetwork",
    "Conv2d",
    "Dataset",
    "Dense",
    "DenseCNN",
    "DenseNetwork",
    "Flatten",
    "L2Layer",
    "L2Result",
    "Layer",
    "LossCurvature",
    "MaxPool2d",
    "MemoryReport",
    "Optimizer",
    "QuantizedModel",
    "Sequential",
    "TernaryMatrix",
    "as_float",
    "channel_axis",
    "cnn_network_kernels",
    "dense_bytes",
    "empirical_cnn_kernels",
    "find_dataset",
    "get_dataset_info",
    "init_weights",
    "l2_compress",
    "load_dataset",
    "memory_report",
    "mlp",
    "mse",
    "one_hot",
    "read_idx",
    "sample_ternary_signs",
    "small_cnn",
    "softmax_cross_entropy",
    "weight_layers",
]

"""The model registry: named digit CNNs built only from layers that quantize to int8 and map to the
Edge TPU (Conv2D, DepthwiseConv2D, BatchNormalization -- folded into the convolution at export --,
ReLU, pooling, Dense, Softmax). No Lambda layers: every model loads in Keras' safe mode.

Input: (N, 28, 28, 1) float32 in [0, 1], white digit on black (pixel / 255).
Output: (N, 10) softmax probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgedigits.contract import INPUT_SHAPE

INPUT_NAME = "digits"
OUTPUT_NAME = "probs"


def _conv_bn_relu(x, filters: int, kernel: int = 3, padding: str = "same", name: str = ""):
    from keras import layers

    x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _sep_bn_relu(x, filters: int, padding: str = "same", name: str = ""):
    """Depthwise 3x3 then pointwise 1x1, each followed by batch norm and ReLU: about a ninth of the
    parameters of a full 3x3 convolution of the same width."""
    from keras import layers

    x = layers.DepthwiseConv2D(3, padding=padding, use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    return _conv_bn_relu(x, filters, kernel=1, name=f"{name}_pw")


def _head(x):
    """Class probabilities, computed in float32 also under mixed precision."""
    from keras import layers

    return layers.Dense(10, activation="softmax", dtype="float32", name=OUTPUT_NAME)(x)


def build_standard():
    """About 81K parameters (about 93 KB as int8 TFLite): three stages of 3x3 convolutions."""
    import keras
    from keras import layers

    inp = keras.Input(INPUT_SHAPE, name=INPUT_NAME)
    x = _conv_bn_relu(inp, 24, name="s1a")               # (28, 28, 24)
    x = _conv_bn_relu(x, 32, name="s1b")
    x = layers.MaxPooling2D(name="s1_pool")(x)           # (14, 14, 32)
    x = _conv_bn_relu(x, 48, name="s2a")
    x = _conv_bn_relu(x, 56, name="s2b")
    x = layers.MaxPooling2D(name="s2_pool")(x)           # (7, 7, 56)
    x = _conv_bn_relu(x, 56, padding="valid", name="s3a")  # (5, 5, 56)
    x = _conv_bn_relu(x, 96, kernel=1, name="s3b")        # (5, 5, 96)
    x = layers.GlobalAveragePooling2D(name="gap")(x)     # (96,)
    x = layers.Dropout(0.2, name="drop")(x)
    return keras.Model(inp, _head(x), name="standard")


def build_tiny():
    """About 9,400 parameters: one full 3x3 convolution, then depthwise-separable blocks, which buy
    twice the width of plain 3x3 convolutions for the same parameters (chosen on the validation split
    over a plain-convolution design of the same size)."""
    import keras
    from keras import layers

    inp = keras.Input(INPUT_SHAPE, name=INPUT_NAME)
    x = _conv_bn_relu(inp, 16, name="s1a")              # (28, 28, 16)
    x = _sep_bn_relu(x, 24, name="s1b")
    x = layers.MaxPooling2D(name="s1_pool")(x)          # (14, 14, 24)
    x = _sep_bn_relu(x, 32, name="s2a")
    x = _sep_bn_relu(x, 32, name="s2b")
    x = layers.MaxPooling2D(name="s2_pool")(x)          # (7, 7, 32)
    x = _sep_bn_relu(x, 48, name="s3a")
    x = _sep_bn_relu(x, 48, name="s3b")                 # (7, 7, 48)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, _head(x), name="tiny")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable
    summary: str
    # the training recipe for full MNIST, chosen on the validation split (see docs/training.md)
    epochs: int = 80
    augment: float = 1.0  # augmentation strength (see edgedigits.train.augment)


REGISTRY = {
    "standard": ModelSpec("standard", build_standard, "most accurate model under 100 KB as int8", augment=0.7),
    "tiny": ModelSpec("tiny", build_tiny, "at most 10,000 parameters", augment=0.25),
}


def build(name: str):
    from edgedigits.errors import EdgeDigitsError

    if name not in REGISTRY:
        raise EdgeDigitsError(f"unknown model '{name}'; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name].build()

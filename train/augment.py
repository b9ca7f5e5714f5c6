"""Augmentation for handwriting seen through a camera: small rotations, zoom, shifts, and stroke-width
changes. It wraps the model only while training; the saved model holds none of it.

`strength` scales every range at once: 1.0 is the default below, 0.5 halves each range, 0 turns
augmentation off. A capacity-bound model (`tiny`) learns MNIST better with gentler augmentation.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

ROTATION_DEG = 12.0  # +-12 degrees
ZOOM = 0.12          # +-12 % size
SHIFT = 0.1          # +-10 % of the side (2.8 px)
STROKE = 0.5         # up to half-way to a 3x3 dilation or erosion


@keras.saving.register_keras_serializable(package="edgedigits")
class RandomAffine(layers.Layer):
    """Rotates, zooms and shifts each image by random amounts in one bilinear resampling.

    One resampling blurs strokes once, where a chain of rotation, zoom and translation layers blurs them
    three times. Unlike Keras' image layers it does not opt out of XLA, so on the JAX backend the whole
    training step, augmentation included, compiles (tested on a CPU and on an H200). Input and output: (N, H, W, 1) float, background 0.
    """

    def __init__(self, rotation_deg: float, zoom: float, shift: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rotation_deg, self.zoom, self.shift, self.seed = rotation_deg, zoom, shift, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # TensorFlow's projective-transform kernel has no XLA version (TensorFlow runs it as a graph)
        self.supports_jit = keras.backend.backend() != "tensorflow"

    def call(self, x, training=None):
        if not training:
            return x
        n = ops.shape(x)[0]
        h, w = ops.shape(x)[1], ops.shape(x)[2]

        def uniform(limit):
            return keras.random.uniform((n,), -limit, limit, seed=self.seed_generator, dtype="float32")

        angle = uniform(math.radians(self.rotation_deg))
        scale = 1.0 + uniform(self.zoom)
        tx, ty = uniform(self.shift) * w, uniform(self.shift) * h
        # output pixel p comes from input c + R(-angle) (p - c - t) / scale, c the image centre
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        ox, oy = cx + tx, cy + ty
        transform = ops.stack([cos, sin, cx - cos * ox - sin * oy,
                               -sin, cos, cy + sin * ox - cos * oy,
                               ops.zeros_like(cos), ops.zeros_like(cos)], axis=1)
        out = ops.image.affine_transform(ops.cast(x, "float32"), transform, interpolation="bilinear",
                                         fill_mode="constant", fill_value=0.0, data_format="channels_last")
        return ops.cast(out, x.dtype)

    def get_config(self):
        return {**super().get_config(), "rotation_deg": self.rotation_deg, "zoom": self.zoom,
                "shift": self.shift, "seed": self.seed}


@keras.saving.register_keras_serializable(package="edgedigits")
class StrokeWidth(layers.Layer):
    """Thickens or thins strokes by a random amount per image.

    Grey-scale dilation (3x3 max) and erosion (3x3 min) bound the change; each image moves a random
    fraction `t` in [-max_change, max_change] towards one of them: t > 0 blends towards the dilated
    digit, t < 0 towards the eroded one. Input and output: (N, 28, 28, 1) float in [0, 1].
    """

    def __init__(self, max_change: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_change = max_change
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        dilated = ops.max_pool(x, 3, strides=1, padding="same")
        eroded = -ops.max_pool(-x, 3, strides=1, padding="same")
        t = keras.random.uniform((ops.shape(x)[0], 1, 1, 1), -self.max_change, self.max_change,
                                 seed=self.seed_generator, dtype=x.dtype)
        target = ops.where(t > 0, dilated, eroded)
        return x + ops.abs(t) * (target - x)

    def get_config(self):
        return {**super().get_config(), "max_change": self.max_change, "seed": self.seed}


def build_augmenter(seed: int, strength: float = 1.0) -> keras.Sequential:
    return keras.Sequential([
        RandomAffine(ROTATION_DEG * strength, ZOOM * strength, SHIFT * strength, seed=seed),
        StrokeWidth(STROKE * strength, seed=seed + 1),
    ], name="augment")

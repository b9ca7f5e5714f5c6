"""Augmentation for handwriting seen through a camera: small rotations, shifts, zoom, and stroke-width
changes. It wraps the model only while training; the saved model holds none of it."""

from __future__ import annotations

import keras
from keras import layers, ops


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


def build_augmenter(seed: int) -> keras.Sequential:
    fill = {"fill_mode": "constant", "fill_value": 0.0}
    return keras.Sequential([
        layers.RandomRotation(12 / 360, seed=seed, **fill),    # +-12 degrees
        layers.RandomZoom(0.12, seed=seed + 1, **fill),        # +-12 % size
        layers.RandomTranslation(0.1, 0.1, seed=seed + 2, **fill),  # +-2.8 px
        StrokeWidth(0.5, seed=seed + 3),
    ], name="augment")

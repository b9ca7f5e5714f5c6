"""Candidate architectures for the GPU sweep; install(name) puts one into the registry as its family."""
from edgedigits.train import models as M


def tiny_b():  # more convolutions at 14x14 and 12x12, valid padding to shrink
    import keras
    from keras import layers
    inp = keras.Input((28, 28, 1), name=M.INPUT_NAME)
    x = M._conv_bn_relu(inp, 10, name="s1a")
    x = M._conv_bn_relu(x, 14, name="s1b")
    x = layers.MaxPooling2D(name="s1_pool")(x)             # 14
    x = M._conv_bn_relu(x, 16, name="s2a")
    x = M._conv_bn_relu(x, 16, padding="valid", name="s2b")  # 12
    x = layers.MaxPooling2D(name="s2_pool")(x)             # 6
    x = M._conv_bn_relu(x, 24, padding="valid", name="s3a")  # 4
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, M._head(x), name="tiny")


def tiny_c():  # depthwise-separable: wider for the same parameters
    import keras
    from keras import layers
    inp = keras.Input((28, 28, 1), name=M.INPUT_NAME)
    x = M._conv_bn_relu(inp, 16, name="s1a")
    x = M._sep_bn_relu(x, 24, name="s1b")
    x = layers.MaxPooling2D(name="s1_pool")(x)             # 14
    x = M._sep_bn_relu(x, 32, name="s2a")
    x = M._sep_bn_relu(x, 32, name="s2b")
    x = layers.MaxPooling2D(name="s2_pool")(x)             # 7
    x = M._sep_bn_relu(x, 48, name="s3a")
    x = M._sep_bn_relu(x, 48, name="s3b")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, M._head(x), name="tiny")


BUILDERS = {"standard": M.build_standard, "tiny_a": M.build_tiny, "tiny_b": tiny_b, "tiny_c": tiny_c}


def install(name: str) -> str:
    family = name.split("_")[0]
    M.REGISTRY[family] = M.ModelSpec(family, BUILDERS[name], M.REGISTRY[family].summary)
    return family

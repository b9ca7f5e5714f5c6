"""The app models: files that MediaPipe Tasks' and the TFLite Task Library's ImageClassifier (Android, iOS,
web, Python) load as they are. Those clients take an RGB image of 3 channels, uint8 or float32, resize
whatever the app passes to the model's input size, and read colour space, normalization and labels from
the TFLite metadata. The digit models take one grey channel, white on black, normalized as MNIST is. So
the graph starts with what an app cannot be asked to do:

    (N, 112, 112, 3) RGB pixels 0..255: a square crop of one digit, dark ink on light paper, the digit
                     filling about 60-75% of it (a photo cut to a digit's box with a margin; a canvas)
    -> 1 - (0.299 R + 0.587 G + 0.114 B) / 255   grey, inverted to white on black (a fixed 1x1 convolution)
    -> 3x3 max, stride 1                          a thin pen line grown by a pixel each way
    -> 4x4 mean                                   28x28, as an area resize (the client's own resize to 112
                                                  is bilinear: from a large crop it skips thin strokes, so
                                                  the model's input is 4x MNIST's and the averaging is here)
    -> x - opening(x), 11x11 (a white top-hat)    the paper's shading taken away: a shadow or a fold across
                                                  the crop is wider than 11 px (40% of it), a pen stroke is
                                                  not; the opening (min, then max, over 11x11) is the paper
    -> (x - mean) / (max - mean + 0.05), below 0: 0   what is left of the paper (most of the crop: the
                                                  mean) to 0, the darkest ink to about 1 (a photo's ink is
                                                  rarely black); 0.05: a blank crop stays dark
    -> the digit model -> (N, 10) probabilities

tflite_app_uint8 is full-integer (int8 inside) with uint8 input (scale 1, zero point 0: the pixel itself)
and uint8 output; tflite_app_fp32 is float32 with normalization mean 0, std 1 in its metadata (the /255
is in the graph). Measured on real crops and on MNIST: README, "In an Android, iOS or web app".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedigits.contract import APP_SCALE, APP_SIZE, app_image

CONTRAST_FLOOR = 0.05  # a blank crop is not stretched into noise
STROKE_GROWTH = 3  # a stroke grown by a 3x3 max at 112 px (5 read thin pens better, MNIST 0.3 point worse)
PAPER_WINDOW = 11  # at 28 px: wider than any stroke (MNIST validation the same at 11, 13 and 15)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's and the browser's RGB -> grey
APP_INPUT = ("RGB image of one digit, dark ink on light paper, square, the digit filling about 60-75% of it "
             "(a crop of a photo, a drawing canvas); raw pixels 0..255, any size: the client resizes it to "
             "112x112; grey, inversion and contrast are in the model")


def app_model(model):
    """The Keras digit model behind the app's input: (N, 112, 112, 3) RGB pixels 0..255 -> (N, 10)."""
    import keras
    from keras import layers

    inp = keras.Input((APP_SIZE, APP_SIZE, 3), name="image")
    grey = layers.Conv2D(1, 1, name="rgb_to_inverted_grey")
    x = grey(inp)
    grey.set_weights([np.array(LUMA, np.float32).reshape(1, 1, 3, 1) / -255.0, np.ones(1, np.float32)])
    x = layers.MaxPooling2D(STROKE_GROWTH, strides=1, padding="same", name="grow_strokes")(x)
    x = layers.AveragePooling2D(APP_SCALE, name="to_28")(x)
    x = layers.Subtract(name="without_paper")([x, _opening(x)])
    x = layers.Lambda(_stretch, name="stretch_contrast")(x)
    return keras.Model(inp, model(x), name=f"{model.name}_app")


def _opening(x):
    """The paper under the ink: a grey opening, the min over PAPER_WINDOW x PAPER_WINDOW, then the max. The
    min is a max of -x, the negation a fixed 1x1 convolution (every client's int8 kernels have CONV_2D and
    MAX_POOL_2D)."""
    from keras import layers

    def negate(t, name):
        conv = layers.Conv2D(1, 1, use_bias=False, name=name)
        out = conv(t)
        conv.set_weights([-np.ones((1, 1, 1, 1), np.float32)])
        return out

    pool = dict(pool_size=PAPER_WINDOW, strides=1, padding="same")
    eroded = negate(layers.MaxPooling2D(**pool, name="paper_min")(negate(x, "negate")), "negate_back")
    return layers.MaxPooling2D(**pool, name="paper_max")(eroded)


def _stretch(x):
    from keras import ops

    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)  # the paper's level, nearly: most of a crop is paper
    ink = ops.max(x, axis=(1, 2, 3), keepdims=True)
    # 1 / d as rsqrt(d)^2: an int8 DIV is refused by the Task Library's TFLite ("Div only supports FLOAT32,
    # INT32 and quantized UINT8"), RSQRT and MUL run everywhere
    r = ops.rsqrt(ink - mean + CONTRAST_FLOOR)
    return ops.relu(x - mean) * (r * r)


def app_pixels(calibration: np.ndarray) -> np.ndarray:
    """(N, 28, 28, 1) float32 in [0, 1], white on black -> (N, 112, 112, 3) float32 RGB pixels, dark on light,
    on paper from white to mid grey and with ink from black to faint: the int8 ranges must hold a photo's
    contrast (ink 0.1 above the paper), not only MNIST's (ink 1 above it), or the stretch saturates."""
    rng = np.random.default_rng(0)
    n = len(calibration)
    paper = rng.uniform(120, 255, (n, 1, 1))
    ink = paper * rng.uniform(0.0, 0.9, (n, 1, 1))
    grey = paper - (paper - ink) * calibration[..., 0]
    return app_image(np.round(255 - grey).astype(np.uint8)).astype(np.float32)


def _converter(ctx, quantized: bool):
    import keras
    import tensorflow as tf

    path = ctx.workdir / f"saved_model_app_{'q' if quantized else 'f'}"
    app_model(ctx.model).export(str(path), format="tf_saved_model", verbose=False,
                                input_signature=[keras.InputSpec(shape=(None, APP_SIZE, APP_SIZE, 3), dtype="float32")])
    conv = tf.lite.TFLiteConverter.from_saved_model(str(path))
    if quantized:
        rgb = app_pixels(ctx.calibration)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rgb[i:i + 1]] for i in range(len(rgb)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # the input's range is 0..255, so uint8 q = round(p / 1.0) + 0: the pixel as the app has it
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8  # the Task Library takes uint8 or float32 scores, not int8
    return conv


def export_tflite_app_uint8(ctx, out: Path) -> Path:
    from edgedigits.convert import export as X
    from edgedigits.convert.tflite_metadata import RGB
    from edgedigits.errors import EdgeDigitsError

    try:
        data = X._convert(_converter(ctx, quantized=True))
    except Exception as e:
        raise EdgeDigitsError(f"full-integer quantization of the app model failed: {X.first_line(e)}") from None
    return X._write(out, data, ctx, color_space=RGB, normalization=None, input_description=APP_INPUT,
                    input_range=(0.0, 255.0), side=APP_SIZE)


def export_tflite_app_fp32(ctx, out: Path) -> Path:
    from edgedigits.convert import export as X
    from edgedigits.convert.tflite_metadata import RGB

    return X._write(out, X._convert(_converter(ctx, quantized=False)), ctx, color_space=RGB,
                    normalization=(0.0, 1.0), input_description=APP_INPUT, input_range=(0.0, 255.0), side=APP_SIZE)

"""The app models: files that MediaPipe Tasks' and the TFLite Task Library's ImageClassifier (Android, iOS,
web, Python) load as they are. Those clients take an RGB image of 3 channels, uint8 or float32, and read
its colour space, normalization and labels from the TFLite metadata; the digit models take one grey
channel, white on black. So the graph starts with what an app cannot be asked to do:

    (N, 28, 28, 3) RGB pixel p in [0, 255], dark ink on light paper (a photo's crop, a drawing canvas)
    -> x = 1 - (0.299 R + 0.587 G + 0.114 B) / 255     grey, inverted to white on black, scaled to [0, 1]
    -> the digit model -> (N, 10) probabilities

as one 1x1 convolution with fixed weights (-0.299/255, -0.587/255, -0.114/255) and bias 1, which
quantizes to int8 like any convolution. tflite_app_uint8 is full-integer (int8 inside) with uint8 input
(scale 1, zero point 0: the pixel itself) and uint8 output; tflite_app_fp32 is float32 with normalization
mean 0, std 1 in its metadata (the /255 is in the graph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's and the browser's RGB -> grey
APP_INPUT = ("28x28 RGB image of one digit, dark ink on light paper (a crop of a photo, a drawing canvas); "
             "raw pixels 0..255: grey, inversion and scaling are in the model")


def app_model(model):
    """The Keras digit model behind an RGB input layer: (N, 28, 28, 3) pixels 0..255 -> (N, 10)."""
    import keras

    inp = keras.Input((28, 28, 3), name="image")
    grey = keras.layers.Conv2D(1, 1, name="rgb_to_inverted_grey")
    x = grey(inp)
    grey.set_weights([np.array(LUMA, np.float32).reshape(1, 1, 3, 1) / -255.0, np.ones(1, np.float32)])
    return keras.Model(inp, model(x), name=f"{model.name}_app")


def app_pixels(calibration: np.ndarray) -> np.ndarray:
    """(N, 28, 28, 1) float32 in [0, 1], white on black -> (N, 28, 28, 3) float32 RGB pixels, dark on light."""
    return np.repeat((1.0 - calibration) * 255.0, 3, axis=-1).astype(np.float32)


def _converter(ctx, quantized: bool):
    import keras
    import tensorflow as tf

    path = ctx.workdir / f"saved_model_app_{'q' if quantized else 'f'}"
    app_model(ctx.model).export(str(path), format="tf_saved_model", verbose=False,
                                input_signature=[keras.InputSpec(shape=(None, 28, 28, 3), dtype="float32")])
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
                    input_range=(0.0, 255.0))


def export_tflite_app_fp32(ctx, out: Path) -> Path:
    from edgedigits.convert import export as X
    from edgedigits.convert.tflite_metadata import RGB

    return X._write(out, X._convert(_converter(ctx, quantized=False)), ctx, color_space=RGB,
                    normalization=(0.0, 1.0), input_description=APP_INPUT, input_range=(0.0, 255.0))

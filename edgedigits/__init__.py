"""edgedigits: train a digit CNN, convert it for devices, run it on a camera.

The stages live in their own sub-packages and pass files to one another:

    edgedigits.train    data loaders, model registry, training runs   -> model.keras
    edgedigits.convert  quantization and export, checks, manifest      -> artifacts + manifest.json
    edgedigits.deploy   light runners (LiteRT, ONNX Runtime) and camera (never imports TensorFlow)
    edgedigits.tools    benchmarks and generated test scenes
"""

__version__ = "0.1.0"

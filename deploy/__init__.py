"""The deploy stage: light runners and the camera pipeline. Never imports TensorFlow.

    from edgedigits.deploy.runners import from_manifest
    runner = from_manifest("out/standard", target="cpu")   # or the shipped default: shipped_manifest()
    probs = runner(digits)                                  # (N, 28, 28) uint8 -> (N, 10)
"""

from pathlib import Path

MODELS = Path(__file__).with_name("models")


def shipped_manifest(model: str = "standard") -> Path:
    """The manifest of a pretrained model converted to every format and shipped in the package."""
    return MODELS / model / "manifest.json"

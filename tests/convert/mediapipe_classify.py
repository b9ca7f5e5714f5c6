"""Run by tests/convert/test_app_models.py in the mediapipe venv: classify (N, H, W, 3) uint8 RGB images
with MediaPipe Tasks' ImageClassifier; argv: model, .npz with "images"; prints [[index, name, score], ...]."""
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision

model, images = sys.argv[1], np.load(sys.argv[2])["images"]
opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=1)
out = []
with vision.ImageClassifier.create_from_options(opts) as clf:
    for img in images:
        r = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)))
        c = r.classifications[0].categories[0]
        out.append([c.index, c.category_name, round(float(c.score), 4)])
print(json.dumps(out))

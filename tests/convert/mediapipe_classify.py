"""Run by tests/convert/test_app_models.py in the mediapipe venv: classify RGB uint8 images of any size
with MediaPipe Tasks' ImageClassifier, as an app passes them; argv: model, .npz of arr_0, arr_1, ...
(np.savez(path, *images)); prints [[index, name, score], ...]."""
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision

model, images = sys.argv[1], np.load(sys.argv[2])
opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=1)
out = []
with vision.ImageClassifier.create_from_options(opts) as clf:
    for i in range(len(images.files)):
        img = np.ascontiguousarray(images[f"arr_{i}"])
        r = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=img))
        c = r.classifications[0].categories[0]
        out.append([c.index, c.category_name, round(float(c.score), 4)])
print(json.dumps(out))

"""Run by tests/convert/test_app_models.py in the tflite-support venv: classify RGB uint8 images of any size
with the TFLite Task Library's ImageClassifier, as an app passes them, and read the file's metadata back with
MetadataDisplayer; argv: model, .npz of arr_0, arr_1, ... (np.savez(path, *images)); prints
{"labels": [...], "license": "...", "top": [[index, name, score], ...]}."""
import json, sys
import numpy as np
from tflite_support import metadata
from tflite_support.task import core, processor, vision

model, images = sys.argv[1], np.load(sys.argv[2])
shown = metadata.MetadataDisplayer.with_model_file(model)
out = {"labels": shown.get_associated_file_buffer("labels.txt").decode().splitlines(),
       "license": json.loads(shown.get_metadata_json()).get("license", ""), "top": []}
clf = vision.ImageClassifier.create_from_options(vision.ImageClassifierOptions(
    base_options=core.BaseOptions(file_name=model),
    classification_options=processor.ClassificationOptions(max_results=1)))
for i in range(len(images.files)):
    img = np.ascontiguousarray(images[f"arr_{i}"])
    c = clf.classify(vision.TensorImage.create_from_array(img)).classifications[0].categories[0]
    out["top"].append([c.index, c.category_name, round(float(c.score), 4)])
print(json.dumps(out))

"""`deploy --collect DIR` and the web app's "Save crops": every digit read, written as the model saw it,
in DIR/<label>/ named by its frame and box; nothing that was there is replaced."""

from __future__ import annotations

import io
import json
import re
import zipfile

import cv2
import numpy as np
import pytest

from edgedigits.deploy.preprocess import segment
from edgedigits.tools import browser as B
from edgedigits.tools.scenes import SceneConfig, make_scene
from tests.conftest import run_cli

NAME = re.compile(r"(?P<src>.+)_f(?P<f>\d{6})_x(?P<x>\d+)_y(?P<y>\d+)_w(?P<w>\d+)_h(?P<h>\d+)(?P<n>-\d+)?\.png$")


@pytest.fixture(scope="module")
def frames(sample, tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(7)
    for i in range(3):
        frame, _ = make_scene(rng, (sample.test.images, sample.test.labels), SceneConfig(digits=(3, 4)), fonts=[])
        cv2.imwrite(str(folder / f"page {i}.png"), frame)  # a space: file names are made plain
    return folder


def test_collect_writes_each_digit_as_the_model_saw_it(frames, tmp_path):
    crops = tmp_path / "crops"
    code, out, err = run_cli("deploy", "--source", str(frames), "--headless", "--collect", str(crops))
    assert code == 0, err
    lines = [json.loads(ln) for ln in out.splitlines()]
    read = [(ln["source"], ln["frame"], d) for ln in lines for d in ln["digits"]]
    files = sorted(crops.glob("*/*.png"))
    assert len(files) == len(read) >= 8 and f"collected {len(files)} digits into {crops}" in err
    for source, index, d in read:
        x, y, w, h = d["box"]
        stem = source.rsplit("/", 1)[-1][:-4].replace(" ", "-")
        label = str(d["label"]) if d["label"] != "?" else None
        hits = list(crops.glob(f"{label or '*'}/{stem}_f{index:06d}_x{x}_y{y}_w{w}_h{h}.png"))
        assert len(hits) == 1, (source, d)
        # byte for byte the digit the model was given
        digits = segment(cv2.imread(source))
        image = next(g.image for g in digits if list(g.box) == d["box"])
        np.testing.assert_array_equal(cv2.imread(str(hits[0]), cv2.IMREAD_UNCHANGED), image)


def test_collect_never_replaces_a_file_and_refuses_its_source(frames, tmp_path):
    crops = tmp_path / "crops"
    assert run_cli("deploy", "--source", str(frames), "--headless", "--collect", str(crops))[0] == 0
    first = {p: p.read_bytes() for p in crops.glob("*/*.png")}
    mine = next(iter(first))
    mine.write_bytes(b"the user's own file")  # a file of that name that is no longer what we wrote
    assert run_cli("deploy", "--source", str(frames), "--headless", "--collect", str(crops))[0] == 0
    assert mine.read_bytes() == b"the user's own file"
    second = sorted(crops.glob("*/*.png"))
    assert len(second) == 2 * len(first) and all(NAME.match(p.name)["n"] == "-2" for p in second if p not in first)
    code, _, err = run_cli("deploy", "--source", str(frames), "--headless", "--collect", str(frames))
    assert code == 2 and "--collect" in err and "the folder of the source images" in err, err
    code, _, err = run_cli("deploy", "--target", "web", "--out", str(tmp_path / "app"), "--collect", str(crops))
    assert code == 2 and "Save crops" in err, err


@pytest.mark.skipif(not B.chromium(), reason="Chromium is not installed (apt-get install chromium)")
def test_the_web_app_saves_the_crops_it_read(shipped, frames, tmp_path):
    app = tmp_path / "app"
    assert run_cli("deploy", "--target", "web", "--manifest", str(shipped[1]), "--out", str(app))[0] == 0
    meta = json.loads((app / "model.json").read_text())
    from edgedigits.contract import PREPROCESSING, SegmentConfig

    # the normalization the app's preprocess.js applies, described as the Python pipeline's
    assert meta["preprocessing"] == PREPROCESSING and meta["segment"]["strokeTarget"] == SegmentConfig().stroke_target
    (app / "t.png").write_bytes((frames / "page 0.png").read_bytes())
    with B.serve(app) as url, B.browser(camera=False) as ctx:
        page = ctx.new_page()
        page.goto(url)
        result = page.evaluate("async () => { await window.edgedigits.ready; return await window.edgedigits.readPhoto('t.png'); }")
        assert result["digits"]
        with page.expect_download() as dl:
            page.click("#crops")
        data = open(dl.value.path(), "rb").read()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        names = z.namelist()
        assert len(names) == len(result["digits"])
        for name, d in zip(names, result["digits"]):
            label, file = name.split("/")
            m = NAME.match(file)
            assert m["src"] == "photo" and [int(m[k]) for k in "xywh"] == d["box"]
            assert label == meta["labels"][int(np.argmax(d["probs"]))]
            png = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            np.testing.assert_array_equal(png, np.array(d["image"], np.uint8).reshape(28, 28))

"""Segmentation by recognition (deploy/group.py) and the digit verifier: real photos of ../shared, the
shipped verifier in LiteRT and ONNX Runtime, real OpenCV decoding. Floors sit a little below what was
measured; the photos are read where they are, never copied."""

import json

import cv2
import numpy as np
import pytest

from edgedigits.deploy import group
from edgedigits.deploy.group import in_no_word, lines, without_hairlines
from edgedigits.deploy.preprocess import segment
from edgedigits.deploy.runners import Verifier, from_manifest
from tests.conftest import PHOTOS, photo_labels, run_cli


@pytest.fixture(scope="module")
def verifier():
    return Verifier("litert")


def _benchmark(folder: str, tmp_path, *extra: str) -> dict:
    photo_labels(folder)
    code, out, err = run_cli("benchmark", "photos", str(PHOTOS / folder), "--json", str(tmp_path / f"{folder}.json"), *extra)
    assert code == 0, err
    return json.loads((tmp_path / f"{folder}.json").read_text())


def test_nothing_is_read_where_there_is_no_digit(tmp_path):
    """People, a cat, coins, bricks, grass, gravel, a printed page, a horse, stars: no output at all."""
    r = _benchmark("nodigits", tmp_path)
    read = {f["file"]: f["read"] for f in r["files"] if f["read"]}
    assert r["no_digit_photos"] == 23 and r["digits"] == 0
    # measured 1 of 23 (rocket.jpg, a tower's mast read as 1); the goal is 0. ihc.png's stain read as 1
    # went with the word rule (a glyph set aside beside it), phantom.png's outline read as 0 with the
    # ellipse rule (a loop no hand draws)
    assert r["no_digit_photos_with_output"] <= 1, read
    assert r["invented_per_100"] <= 100 * 1 / 23


def test_pages_of_numbers_are_read_line_by_line(tmp_path):
    """Grids, squared paper, a diagonal line, a strip, close-ups: every digit, lines in order."""
    r = _benchmark("pages", tmp_path)
    misread = {f["file"]: (f["expected"], f["read"]) for f in r["files"] if not f["exact"]}
    # measured 14/14, 110/110 digits (before groups were read again without their hairlines, 13/14:
    # mrlokans_1.jpg lost a 2 and a 3 that a dotted grid line crosses)
    assert r["exact"] >= 13, misread
    assert r["digit_accuracy"] >= 0.98, misread


def test_a_loop_no_hand_draws_is_no_zero(sample):
    """ellipse_misfit: an ellipse drawn by a machine (a ring, a rim; here OpenCV's polygon of one) fits
    its own moments' ellipse to under ELLIPSE at any angle, once it is large enough that its pixels'
    steps do not dominate (measured 0.0018 to 0.0025 at 60 to 200 px, 0.013 for a 30x44 one); the written 0s of MNIST's test digits, at the sizes a camera sees
    them, never come near it; a 1, a 7 enclose nothing to judge."""
    for (w, h), angle, thick in [((60, 90), 0, 3), ((200, 140), 30, 6), ((100, 100), 0, 4), ((90, 64), 75, 3)]:
        m = np.zeros((h + 40, w + 40), np.uint8)
        cv2.ellipse(m, ((w + 40) // 2, (h + 40) // 2), (w // 2, h // 2), angle, 0, 360, 255, thick)
        x, y, bw, bh = cv2.boundingRect(m)
        assert group.ellipse_misfit(m[y:y + bh, x:x + bw]) < group.ELLIPSE, (w, h, angle)
    zeros = sample.test.images[sample.test.labels == 0][:100]
    fits = []
    for scale in (2, 4):  # 56 and 112 px: a digit at the search size, and a close-up
        for img in zeros:
            m = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) >= 128
            x, y, bw, bh = cv2.boundingRect(m.astype(np.uint8))
            fits.append(group.ellipse_misfit(255 * m[y:y + bh, x:x + bw].astype(np.uint8)))
    judged = [f for f in fits if f < 1]
    assert len(judged) >= 150 and min(judged) >= 2 * group.ELLIPSE, sorted(judged)[:5]
    one = np.zeros((40, 8), np.uint8)
    one[:, 3:6] = 255
    assert group.ellipse_misfit(one) == 1.0


def test_hairlines_go_and_strokes_stay_in_place():
    """The opening that takes a dotted grid line off a digit: ink one pixel wide goes, a stroke two or
    more pixels wide stays where it was, pixel for pixel."""
    m = np.zeros((20, 20), np.uint8)
    m[4:16, 8:11] = 255  # a stroke 3 pixels wide
    m[6:8, 13:15] = 255  # a 2x2 dot
    line = np.zeros_like(m)
    line[:, 5] = 255  # a grid line crossing the box
    line[10, :] = 255  # and one across the stroke
    assert np.array_equal(without_hairlines(m | line), m)  # the lines gone, even beside the stroke


def test_a_digit_among_letters_is_a_letter():
    """The word rule on boxes of 40 px glyphs: `o`, `l`, `S` read as digits beside a letter the verifier set
    aside are letters; a number keeps its digits, even with one digit set aside, or one doubted."""
    def box(i, top=0, h=40):
        return (40 * i if i < 6 else 40 * i + 100, top, 30, h)  # 10 px apart; a word space after the sixth

    # "lo" read as digits, "ve" set aside, a number 1 2 3 after a space: the word goes, the number stays
    digits = [(box(0), 0.9), (box(1), 0.99), (box(7), 0.99), (box(8), 0.99), (box(9), 0.95)]
    kept = in_no_word(digits, [box(2), box(3)])
    assert [d[0] for d in kept] == [box(7), box(8), box(9)]
    # "lol" with only an "a" set aside reads as a number with a digit rejected: letters must be as many
    # as the clear digits (or doubted)
    lol = [(box(0), 0.9), (box(1), 0.99), (box(2), 0.9)]
    assert in_no_word(lol, [box(3)]) == lol
    assert in_no_word([(box(0), 0.6), (box(1), 0.99), (box(2), 0.45)], [box(3)]) == []
    # a number with one digit the verifier set aside, its other three clear: still a number
    number = [(box(0), 0.99), (box(1), 0.98), (box(3), 0.97)]
    assert in_no_word(number, [box(2)]) == number
    # ... but two glyphs set aside beside two clear digits: a word
    assert in_no_word(number[:2], [box(2), box(3)]) == []
    # doubted digits (p < 0.5) count as letters beside a glyph set aside, and make no word alone (a
    # writer whose 4s and 1s the verifier doubts: "4851" was read as nothing)
    assert in_no_word([(box(0), 0.3), (box(1), 0.95), (box(2), 0.9)], [box(3)]) == []
    assert len(in_no_word([(box(0), 0.3), (box(1), 0.95), (box(2), 0.9)], [])) == 3
    assert len(in_no_word([(box(0), 0.4), (box(1), 1.0), (box(2), 1.0), (box(3), 0.37)], [])) == 4
    # what is set aside counts only at a letter's height (not a speck, not a shadow's edge)
    pair = [(box(0), 0.6), (box(1), 0.9)]
    assert in_no_word(pair, [box(2)]) == []
    assert in_no_word(pair, [(80, 30, 10, 8)]) == pair
    # a letter in the line above is in another word
    assert in_no_word(pair, [(80, -60, 30, 40)]) == pair
    assert in_no_word([], [box(1)]) == []


ENGLISH = ("the quick brown fox jumps over the lazy dog she sells sea shells by the shore a page of handwritten "
           "words is not a number lovely global soil oil blossom zebra quiz being bold is good said Lola go to "
           "Oslo it is all big logic Ollie dear diary today I bought bread eggs oil and a lamp best wishes Bob").split()


def _handwritten_page(rng, fonts) -> np.ndarray:
    """A 640x480 camera frame of a page of English in a handwriting font: words full of l, o, S, Z, b, g."""
    from edgedigits.tools.scenes import _paper
    from edgedigits.train.negatives import _camera, text_alpha

    img = _paper(rng, 640, 480, rng.uniform() < 0.4)
    ink = np.array([rng.uniform(60, 140), rng.uniform(10, 60), rng.uniform(0, 50)])
    height, font = int(rng.integers(16, 60)), fonts[rng.integers(len(fonts))]
    y = int(rng.integers(4, 120))
    while y < 480 - 2 * height:
        a = text_alpha(" ".join(rng.choice(ENGLISH, int(rng.integers(2, 6)))), font, height)
        if a is not None:
            a = a[:, :620]
            x = int(rng.integers(4, max(5, 640 - a.shape[1] - 4)))
            region = img[y:y + a.shape[0], x:x + a.shape[1]]
            a = a[:region.shape[0], :region.shape[1], None]
            region[:] = region * (1 - a) + ink * a
        y += int(height * rng.uniform(1.6, 2.6))
    return _camera(rng, img)


def test_handwritten_words_are_not_read_as_digits(monkeypatch):
    """Generated pages of handwritten English (the handwriting fonts; words chosen full of letters shaped
    like digits): the word rule at least halves the digits read there. Generated, so a check of the rule
    on text, not a measure of real handwriting."""
    from edgedigits.deploy.camera import recognize
    from edgedigits.tools.scenes import handwriting_fonts

    fonts = handwriting_fonts()
    if len(fonts) < 6:
        pytest.skip("the handwriting fonts are not installed (`make system-deps`)")
    runner = from_manifest(_shipped())
    frames = [_handwritten_page(np.random.default_rng(seed), fonts) for seed in range(30)]

    def invented():
        found = [len(recognize(f, runner).digits) for f in frames]
        return sum(1 for n in found if n), sum(found)

    pages, digits = invented()
    monkeypatch.setattr(group, "in_no_word", lambda digits, others, sure=0.5: digits)
    pages_before, digits_before = invented()
    print(f"handwritten pages with output {pages}/30 ({digits} digits); without the word rule "
          f"{pages_before}/30 ({digits_before})")
    assert 2 * digits <= digits_before and pages < pages_before
    assert pages <= 10  # measured 8/30, 43 digits (21/30, 97, without the rule), float32 verifier


def test_mixed_folder_scores_digits_and_no_digit_photos(tmp_path):
    """A labels.csv with an empty label (a photo with no digit) beside labelled ones: both are scored."""
    photo_labels("multi")
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, src in [("n.png", PHOTOS / "multi" / "niraj-dudani_1.jpeg"), ("cat.png", PHOTOS / "nodigits" / "chelsea.png")]:
        assert cv2.imwrite(str(folder / name), cv2.imread(str(src)))
    (folder / "labels.csv").write_text("filename,label\nn.png,7899777743\ncat.png,\n")
    code, out, err = run_cli("benchmark", "photos", str(folder), "--json", str(tmp_path / "m.json"),
                             "--markdown", str(tmp_path / "m.md"))
    assert code == 0, err
    r = json.loads((tmp_path / "m.json").read_text())
    assert r["photos"] == 2 and r["digits"] == 10 and r["no_digit_photos"] == 1
    assert r["exact"] == 2 and r["no_digit_photos_with_output"] == 0
    assert "photos with no digit: 0/1 with any output" in out


def test_verifier_accepts_real_digits_and_rejects_clutter(verifier, mnist_dir):
    """MNIST validation digits (never trained on) pass; on the measured figures: 99.9% accepted."""
    from edgedigits.train.data import load, train_val_split

    _, val = train_val_split(load(str(mnist_dir)).train, 0.1, 0)
    p = verifier(val.images)
    assert np.mean(p >= 0.1) >= 0.997, np.mean(p >= 0.1)  # measured 99.87% kept (0.13% rejected)
    assert np.mean(p >= 0.5) >= 0.99, np.mean(p >= 0.5)  # measured 99.4% not doubted
    onnx = Verifier("onnxruntime")(val.images[:500])
    assert np.mean((onnx >= 0.5) == (p[:500] >= 0.5)) >= 0.99  # the two files agree
    blank = np.zeros((4, 28, 28), np.uint8)
    blank[1, 10:18, 4:24] = 255  # a filled bar
    blank[2] = (np.indices((28, 28)).sum(0) % 4 == 0) * 255  # hatching
    blank[3, ::3, :] = 255  # ruled lines
    assert (verifier(blank[1:]) < 0.1).all()  # (blank[0], empty, never comes out of the pipeline)


def test_the_camera_shows_nearly_every_mnist_digit(mnist_dir):
    """What the camera pipeline would not show of MNIST validation digits (rejected by the verifier, or
    doubted and not read confidently enough), the verifier beside the shipped classifier, both runtimes:
    the goal is at most 0.2%."""
    from edgedigits.deploy.runners import VERIFIER
    from edgedigits.train.verifier import evaluate

    r = evaluate(str(mnist_dir), VERIFIER, "val", say=lambda *a: None)
    assert r["digits"] == 5999
    # measured 0.183% (11 of 5,999) and 0.133%
    assert r["litert"]["not_shown"] <= 12 / 5999, r
    assert r["onnxruntime"]["not_shown"] <= 12 / 5999, r


def test_a_doubted_piece_is_shown_only_where_the_classifier_reads_it():
    from edgedigits.contract import SegmentConfig
    from edgedigits.deploy.camera import readable

    cfg = SegmentConfig()
    assert readable(0.6, 0.2, 0.6, cfg)  # the verifier is sure: shown, as "?" if need be
    assert readable(0.3, 0.7, 0.6, cfg) and not readable(0.3, 0.5, 0.6, cfg)  # doubted: read confidently
    assert readable(0.2, 0.95, 0.9, cfg) and not readable(0.2, 0.85, 0.9, cfg)  # as --confidence asks


def _two_digits(images, a, b, gap):
    """A page with the MNIST digits a and b, 84 px tall, their left edges `gap` px apart."""
    page = np.full((200, 300), 235, np.uint8)
    for i, x in ((a, 60), (b, 60 + gap)):
        big = cv2.resize(images[i], (84, 84), interpolation=cv2.INTER_CUBIC)
        page[50:134, x:x + 84] = np.minimum(page[50:134, x:x + 84], 255 - big)
    return cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)


def test_a_wide_digit_is_not_cut_in_two(verifier, test_digits):
    """A 3 and a wide 4 side by side: two digits. Each half of the 4 reads as a digit to the verifier;
    before each part of a cut paid its prior cost (group.PART) they came out as 3, 2, 1."""
    images, labels = test_digits
    a, b = [int(np.flatnonzero(labels == d)[0]) for d in (3, 4)]
    digits = segment(_two_digits(images, a, b, 62), verify=verifier)
    runner = from_manifest(_shipped(), verifier=False)
    assert list(runner(np.stack([d.image for d in digits])).argmax(1)) == [3, 4]


def test_joined_digits_are_cut_apart(verifier, test_digits):
    """Pairs of MNIST digits written so close that the pipeline finds one piece of ink: read as the two
    digits. Measured 15 of the 19 joined pairs made here (12 without the parts' prior cost)."""
    from edgedigits.contract import SegmentConfig
    from edgedigits.deploy.preprocess import _search, to_gray

    images, labels = test_digits
    runner = from_manifest(_shipped(), verifier=False)
    joined = right = 0
    misread = []
    for gap in (48, 52):
        for pair in [(3, 4), (1, 7), (0, 0), (5, 2), (8, 9), (6, 1), (2, 3), (4, 5), (7, 8), (9, 0)]:
            for k in range(3):
                a, b = [int(np.flatnonzero(labels == d)[k]) for d in pair]
                page = _two_digits(images, a, b, gap)
                if len(_search(to_gray(page), SegmentConfig(), False, True)[3][1]) != 1:
                    continue  # two pieces: not joined
                joined += 1
                digits = segment(page, verify=verifier)
                read = [int(c) for c in runner(np.stack([d.image for d in digits])).argmax(1)] if digits else []
                right += read == list(pair)
                if read != list(pair):
                    misread.append((pair, gap, read))
    assert joined == 19
    assert right >= 14, misread


def _shipped():
    from edgedigits.deploy import shipped_manifest

    return shipped_manifest("standard")


def test_lines_follow_a_diagonal_and_read_a_grid_row_by_row():
    # a line rising to the right, each digit higher than the last by most of its height
    diagonal = [(20 + 40 * i, 300 - 30 * i, 30, 40) for i in range(6)]
    assert [i for i, _ in lines(diagonal[::-1])] == [5, 4, 3, 2, 1, 0]
    assert {line for _, line in lines(diagonal)} == {0}
    # a 3x4 grid with rows nearly touching: row by row, each left to right
    grid = [(30 + 45 * c, 20 + 44 * r, 30, 40) for r in range(3) for c in range(4)]
    order = lines(grid[::-1])
    assert [grid[::-1][i] for i, _ in order] == grid
    assert [line for _, line in order] == [0] * 4 + [1] * 4 + [2] * 4
    # two digits, then two a step lower (or higher) starting where they end: one line, in order
    for step in (80, -80):
        stairs = [(0, 100, 40, 60), (60, 100, 40, 60), (120, 100 + step, 40, 60), (180, 100 + step, 40, 60)]
        assert lines(stairs[::-1]) == [(3, 0), (2, 0), (1, 0), (0, 0)]
        assert {line for _, line in lines(stairs, steps=False)} == {0, 1}  # (the word rule's lines)
    # ... but not two heights apart, nor when the second pair shares the first's columns
    assert {line for _, line in lines([(0, 100, 40, 60), (60, 100, 40, 60), (120, 230, 40, 60), (180, 230, 40, 60)])} == {0, 1}
    assert {line for _, line in lines([(0, 100, 40, 60), (60, 100, 40, 60), (40, 180, 40, 60), (100, 180, 40, 60)])} == {0, 1}


def test_geometry_alone_without_a_verifier_is_unchanged(verifier):
    """Without the verifier (the web app's pipeline) the geometric rules decide, as before."""
    photo_labels("multi")
    frame = cv2.imread(str(PHOTOS / "multi" / "niraj-dudani_1.jpeg"))
    plain = segment(frame)
    assert len(plain) == 10
    assert len(segment(frame, verify=verifier)) == 10


def _made_frame(names: list[str], height: int, margin: float | None = None) -> np.ndarray:
    """A four-digit frame made from real photos of single/, side by side at `height` pixels: each photo
    whole, or cut to the box deploy finds with `margin` of its height above and below it, and 0.15 more
    beside it."""
    from edgedigits.deploy.camera import recognize

    runner = from_manifest(_shipped())
    tiles = []
    for name in names:
        image = cv2.imread(str(PHOTOS / "single" / name), cv2.IMREAD_COLOR)
        if margin is not None:
            x, y, w, h = max(recognize(image, runner).digits, key=lambda d: d.box[2] * d.box[3]).box
            m, side = round(margin * h), round((margin + 0.15) * h)  # as wide as a digit is, at least
            image = cv2.copyMakeBorder(image, m, m, side, side, cv2.BORDER_REPLICATE)[y:y + h + 2 * m,
                                                                                    x:x + w + 2 * side]
        tiles.append(cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height),
                                interpolation=cv2.INTER_AREA))
    return np.concatenate(tiles, 1)


def test_close_ups_side_by_side_keep_their_full_height_strokes():
    """Four close-ups of single/ side by side at 240 px, as a four-digit frame made from real photos: the
    stems of the 7 and the 1 each cross most of the frame, upright and thin, and two such strokes are not
    the lines of paper (read "90" before: both were removed as paper lines)."""
    rows = dict(photo_labels("single"))
    names = ["Krisut01_19.png", "Krisut01_16.png", "scholich_1.png", "Krisut01_3.png"]
    from edgedigits.deploy.camera import recognize

    assert recognize(_made_frame(names, 240), from_manifest(_shipped())).text == \
        "".join(rows[n] for n in names) == "9701"


def test_a_number_of_digits_the_verifier_doubts_is_no_word():
    """One writer's four photos side by side at 240 px, whole: the verifier doubts her 4s and her 1s (p
    0.37 to 0.43), and the word rule once took two doubted digits for letters ("4851" read as nothing,
    "3118" as 3)."""
    rows = dict(photo_labels("single"))
    from edgedigits.deploy.camera import recognize

    runner = from_manifest(_shipped())
    for names, want in [(["Krisut01_10.png", "Krisut01_17.png", "Krisut01_11.png", "Krisut01_3.png"], "4851"),
                        (["Krisut01_7.png", "Krisut01_3.png", "Krisut01_4.png", "Krisut01_18.png"], "3118")]:
        assert "".join(rows[n] for n in names) == want
        text = recognize(_made_frame(names, 240), runner).text
        # Krisut01_10.png's 4, closed at the top, is the classifier's one miss in single/ (read as 9)
        assert text == want or (want == "4851" and text == "9851"), text


def test_whole_photos_side_by_side_read_as_one_line():
    """One writer's whole photos side by side at 480 px: each digit sits at its own height in its photo,
    a step up or down from the one before ("3820" read "38 20", "4328" "8 432" before)."""
    rows = dict(photo_labels("single"))
    from edgedigits.deploy.camera import recognize

    runner = from_manifest(_shipped())
    for names in (["kHarshit_4.jpg", "kHarshit_9.jpg", "kHarshit_3.jpg", "kHarshit_1.jpg"],
                  ["kHarshit_5.jpg", "kHarshit_4.jpg", "kHarshit_3.jpg", "kHarshit_9.jpg"]):
        assert recognize(_made_frame(names, 480), runner).text == "".join(rows[n] for n in names)


def test_digits_at_uneven_heights_that_one_level_crosses_are_one_line():
    """One writer's whole photos side by side, each digit at its own height in its photo: when one level
    crosses every digit, they are one line, read left to right ("0436" read "06 43", "6203" read "0 623"
    before: a digit joined the line of the one it was most level with, however far back)."""
    rows = dict(photo_labels("single"))
    from edgedigits.deploy.camera import recognize

    runner = from_manifest(_shipped())
    for names in (["kHarshit_1.jpg", "kHarshit_5.jpg", "kHarshit_4.jpg", "kHarshit_7.jpg"],
                  ["kHarshit_7.jpg", "kHarshit_3.jpg", "kHarshit_1.jpg", "kHarshit_4.jpg"]):
        assert recognize(_made_frame(names, 480), runner).text == "".join(rows[n] for n in names)
    uneven = [(120, 65, 95, 135), (475, 150, 120, 180), (875, 170, 105, 165), (1200, 105, 75, 140)]
    assert lines(uneven[::-1]) == [(3, 0), (2, 0), (1, 0), (0, 0)]
    assert {line for _, line in lines(uneven, steps=False)} == {0, 1}  # (the word rule's lines: level)


def test_a_doubted_bar_from_the_frames_edge_is_no_digit():
    """One writer's whole photos side by side: where a sheet ends inside its photo, the dark strip beyond
    it reaches in from the frame's top edge, a bar the verifier doubts (p 0.10 to 0.18), and was read as
    a 1 ("1 7432", "1 3541", "41328"). A bar from the edge is no digit; a digit touching the edge, or a bar inside the
    frame, still is."""
    rows = dict(photo_labels("single"))
    from edgedigits.deploy.camera import recognize

    runner = from_manifest(_shipped())
    for names, width in ((["kHarshit_8.jpg", "kHarshit_5.jpg", "kHarshit_4.jpg", "kHarshit_3.jpg"], 480),
                         (["kHarshit_4.jpg", "kHarshit_6.jpg", "kHarshit_5.jpg", "kHarshit_2.jpg"], 240)):
        assert recognize(_made_frame(names, width), runner).text == "".join(rows[n] for n in names)
    assert group.from_edge((330, 0, 30, 260), (480, 1440))  # the strip: from the top edge, 8.7 times longer
    assert group.from_edge((0, 100, 200, 40), (480, 640))  # from the left edge, lying
    assert not group.from_edge((330, 2, 30, 260), (480, 1440))  # a 1 inside the frame
    assert not group.from_edge((1225, 0, 110, 260), (480, 1440))  # an 8 touching the edge


def test_an_underline_is_part_of_no_digit():
    """A 0 cut from its photo with the paper's line just below it, among three other digits: the line is
    wider than the 0 is tall, so no candidate joins them (read "049" before: the 0 and the line made one
    wide group, cut apart into pieces that read as nothing)."""
    rows = dict(photo_labels("single"))
    names = ["ashishdasu_1.png", "parker-smith02_2.jpg", "Krisut01_1.png", "Krisut01_19.png"]
    from edgedigits.deploy.camera import recognize

    assert recognize(_made_frame(names, 120, margin=0.3), from_manifest(_shipped())).text == \
        "".join(rows[n] for n in names) == "0409"


def test_full_height_close_ups_side_by_side():
    """Four digits cut from their photos to their boxes (5% margin) side by side: every stem crosses the
    frame from top to bottom, upright, straight and thin as a paper line; with no level line beside them
    they are digits (read "3" before: the two 1s and a 3's strokes were removed as paper lines)."""
    rows = dict(photo_labels("single"))
    names = ["kHarshit_2.jpg", "ashishdasu_4.png", "scholich_4.png", "Krisut01_3.png"]
    from edgedigits.deploy.camera import recognize

    assert recognize(_made_frame(names, 480, margin=0.05), from_manifest(_shipped())).text == \
        "".join(rows[n] for n in names) == "1331"

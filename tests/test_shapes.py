"""dbl_kit.shapes: determinism, file layout, and captions that are true of their scene.

The caption checks parse captions with this file's own word lists and regular expressions and compare
against the symbolic scenes, so they do not reuse the generator's grammar code."""
import hashlib, json, re

import numpy as np
import pytest

from dbl_kit.core import KitError
from dbl_kit.data import open_precomp, load_split
from dbl_kit.shapes import ensure_shapes, generate_shapes

SMALL = dict(n_train=60, n_dev=10, n_test=30)
FILES = [f"{s}_{x}" for s in ("train", "dev", "test") for x in ("ims.npy", "caps.txt", "scenes.json")] + ["meta.json"]


def digests(folder):
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in FILES}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_shapes(tmp_path_factory.mktemp("shapes") / "a", **SMALL)


def test_same_seed_same_bytes(small, tmp_path):
    again = generate_shapes(tmp_path / "b", **SMALL)
    assert digests(again) == digests(small)


def test_other_seed_other_data(small, tmp_path):
    other = digests(generate_shapes(tmp_path / "c", seed=1, **SMALL))
    mine = digests(small)
    assert all(other[f] != mine[f] for f in FILES)


def test_test_split_does_not_depend_on_train_size(small, tmp_path):
    other = digests(generate_shapes(tmp_path / "d", **{**SMALL, "n_train": 7}))
    mine = digests(small)
    for f in ("test_ims.npy", "test_caps.txt", "test_scenes.json"):
        assert other[f] == mine[f]


def test_layout_counts_and_dtypes(small):
    meta = json.loads((small / "meta.json").read_text())
    for split, n in (("train", 60), ("dev", 10), ("test", 30)):
        ims = np.load(small / f"{split}_ims.npy")
        assert ims.shape == (n, 12, 128) and ims.dtype == np.float32 and np.isfinite(ims).all()
        caps = (small / f"{split}_caps.txt").read_text(encoding="utf-8").split("\n")
        assert caps[-1] == "" and len(caps[:-1]) == 5 * n and all(c.strip() for c in caps[:-1])
        scenes = json.loads((small / f"{split}_scenes.json").read_text())
        assert len(scenes) == n
        assert meta["splits"][split] == {"images": n, "captions": 5 * n}
        for s in scenes:
            assert 2 <= len(s["objects"]) <= 4 and len(s["regions"]) == 12
            assert set(s["regions"]) - {-1} == set(range(len(s["objects"])))  # every object detected, no other index
            cells = [(o["row"], o["col"]) for o in s["objects"]]
            assert len(set(cells)) == len(cells)
            for o in s["objects"]:
                assert o["col"] == int(o["x"] * 3) and o["row"] == int(o["y"] * 3)


def test_passes_open_precomp_and_loads(small):
    assert sorted(open_precomp(small)) == ["dev", "test", "train"]
    split = load_split(small, "test")
    assert split.captions_per_image == 5 and split.n_images == 30 and len(split.scenes) == 30


def test_five_different_captions_per_image(small):
    caps = (small / "train_caps.txt").read_text().splitlines()
    groups = [caps[i:i + 5] for i in range(0, len(caps), 5)]
    assert len(groups) == 60
    assert sum(len(set(g)) == 5 for g in groups) >= 55


# ---- captions are true of their scene ------------------------------------------------------------------------
COLOR = "red|orange|yellow|green|blue|purple|white|gray"
NOUN_OF = {"circle": "circle", "disk": "circle", "hexagon": "hexagon", "square": "square", "box": "square",
           "diamond": "diamond", "rhombus": "diamond", "triangle": "triangle", "star": "star", "cross": "cross",
           "plus sign": "cross", "heart": "heart", "shape": None, "object": None}
PLURAL_OF = {"circles": "circle", "disks": "circle", "hexagons": "hexagon", "squares": "square", "boxes": "square",
             "diamonds": "diamond", "rhombuses": "diamond", "triangles": "triangle", "stars": "star",
             "crosses": "cross", "plus signs": "cross", "hearts": "heart"}
SIZE_OF = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}
NOUN = "|".join(sorted(NOUN_OF, key=len, reverse=True))
NP = rf"\ban? (?:({'|'.join(SIZE_OF)}) )?(?:({COLOR}) )?({NOUN})\b"
NUMBER = {"one": 1, "two": 2, "three": 3, "four": 4}
REL = {"to the left of": "left", "left of": "left", "on the left of": "left", "to the right of": "right",
       "right of": "right", "on the right of": "right", "above": "above", "over": "above", "below": "below",
       "under": "below", "beneath": "below", "next to": "near", "beside": "near", "near": "near"}
REL_RE = "|".join(sorted(REL, key=len, reverse=True))


def fits(o, size, color, noun):
    return ((size is None or SIZE_OF[size] == o["size"]) and (color is None or color == o["color"])
            and (NOUN_OF[noun] is None or NOUN_OF[noun] == o["shape"]))


def holds(rel, a, b):
    dr, dc = a["row"] - b["row"], a["col"] - b["col"]
    return {"left": dc < 0, "right": dc > 0, "above": dr < 0, "below": dr > 0,
            "near": max(abs(dr), abs(dc)) == 1}[rel]


def clean(caption):
    c = caption.lower().rstrip(" .")
    for prefix in ("there is ", "a picture of ", "an image of ", "we can see ", "this shows "):
        if c.startswith(prefix): c = c[len(prefix):]
    return c


def test_captions_are_true_of_their_scene(small):
    caps = (small / "train_caps.txt").read_text().splitlines()
    scenes = json.loads((small / "train_scenes.json").read_text())
    n_relations = n_counts = 0
    for j, caption in enumerate(caps):
        scene, c = scenes[j // 5], clean(caps[j])
        objs = scene["objects"]
        nps = re.findall(NP, c)
        assert nps or re.search(rf"\b({'|'.join(NUMBER)}) ", c), caption
        for size, color, noun in nps:
            assert any(fits(o, size or None, color or None, noun) for o in objs), (caption, objs)
        for bg in re.findall(r"on an? (\w+) background", c):
            assert bg == scene["background"], caption
        m = re.fullmatch(rf"{NP} (?:is )?({REL_RE}) {NP}", c)
        if m:
            s1, c1, n1, rel, s2, c2, n2 = (g or None for g in m.groups())
            assert any(holds(REL[rel], a, b) for a in objs for b in objs if a is not b
                       and fits(a, s1, c1, n1) and fits(b, s2, c2, n2)), (caption, objs)
            n_relations += 1
        m = re.match(rf"(?:there are |a group of )?({'|'.join(NUMBER)}) (shapes|objects)\b", c)
        if m:
            assert NUMBER[m[1]] == len(objs), caption
            n_counts += 1
        m = re.match(rf"({'|'.join(NUMBER)}) ({'|'.join(list(PLURAL_OF) + list(NOUN_OF))})\b", c)
        if m and m[2] not in ("shapes", "objects", "shape", "object"):
            shape = PLURAL_OF.get(m[2]) or NOUN_OF[m[2]]
            assert NUMBER[m[1]] == sum(o["shape"] == shape for o in objs), caption
            n_counts += 1
    assert n_relations > 20 and n_counts > 5  # the checks above did see those templates


def test_where_phrases_match_the_grid(small):
    caps = (small / "train_caps.txt").read_text().splitlines()
    scenes = json.loads((small / "train_scenes.json").read_text())
    rows, cols = {"top": 0, "bottom": 2}, {"left": 0, "right": 2}
    checked = 0
    for j, caption in enumerate(caps):
        m = re.fullmatch(rf"{NP} (in the|at the|on the) ((?:top|middle|bottom|left|right|center)(?: left| right)?)( corner)?",
                         clean(caption))
        if not m: continue
        size, color, noun, where = m[1] or None, m[2] or None, m[3], m[5].split()
        if where in (["center"], ["middle"]): cell = {(1, 1)}
        elif len(where) == 2: cell = {(rows[where[0]], cols[where[1]])}
        elif where[0] in rows: cell = {(rows[where[0]], 1)}
        else: cell = {(1, cols[where[0]])}
        assert any(fits(o, size, color, noun) and (o["row"], o["col"]) in cell for o in scenes[j // 5]["objects"]), caption
        checked += 1
    assert checked > 10


def test_features_carry_the_colour(tmp_path):
    "A linear read-out (least squares, fitted on train regions) recognises object colours far above chance."
    folder = generate_shapes(tmp_path / "s", n_train=400, n_dev=1, n_test=200)
    colors = "red orange yellow green blue purple white gray".split()

    def regions(split):
        ims = np.load(folder / f"{split}_ims.npy")
        scenes = json.loads((folder / f"{split}_scenes.json").read_text())
        x, y, seen = [], [], set()
        for i, s in enumerate(scenes):
            for r, obj in enumerate(s["regions"]):
                if obj >= 0 and (i, obj) not in seen:  # the first detection of each object
                    seen.add((i, obj)); x.append(ims[i, r]); y.append(colors.index(s["objects"][obj]["color"]))
        return np.column_stack([np.asarray(x), np.ones(len(x))]), np.asarray(y)

    xtr, ytr = regions("train")
    xte, yte = regions("test")
    w = np.linalg.lstsq(xtr, np.eye(8)[ytr], rcond=None)[0]
    accuracy = np.mean((xte @ w).argmax(1) == yte)
    assert accuracy > 0.5, accuracy  # chance is 1/8


def test_ensure_shapes_generates_once_and_repairs(tmp_path):
    folder = ensure_shapes(tmp_path, **SMALL)
    assert folder == tmp_path / "shapes_precomp"
    before = digests(folder)
    mtime = (folder / "meta.json").stat().st_mtime_ns
    assert ensure_shapes(tmp_path, **SMALL) == folder and (folder / "meta.json").stat().st_mtime_ns == mtime
    (folder / "dev_caps.txt").unlink()  # an incomplete folder is regenerated
    ensure_shapes(tmp_path, **SMALL)
    assert digests(folder) == before
    ensure_shapes(tmp_path, **{**SMALL, "n_dev": 4})  # other parameters regenerate
    assert len(np.load(folder / "dev_ims.npy")) == 4


def test_generate_refuses_to_overwrite_another_dataset(tmp_path):
    folder = generate_shapes(tmp_path / "x", **SMALL)
    assert generate_shapes(folder, **SMALL) == folder  # the same dataset: nothing to do
    with pytest.raises(KitError, match="overwrite=True"):
        generate_shapes(folder, seed=3, **SMALL)
    generate_shapes(folder, seed=3, overwrite=True, **SMALL)
    assert json.loads((folder / "meta.json").read_text())["params"]["seed"] == 3


def test_bad_parameters_are_kit_errors(tmp_path):
    with pytest.raises(KitError, match="n_trian"):
        ensure_shapes(tmp_path, n_trian=5)
    with pytest.raises(KitError, match="n_test"):
        generate_shapes(tmp_path / "y", n_test=0)

"Recipes: train(recipe=..., epochs=1) for one recipe of each backbone on a COCO-layout folder; config.json records them."
import json

import numpy as np
import pytest
from fastcore.test import test_eq

from dbl_kit.recipes import RECIPES, describe_recipes
from dbl_kit.rundir import RunDir
from dbl_kit.analysis import run_texts


def coco_layout(folder, sizes, feat=8, regions=4, seed=0):
    "A COCO-layout precomp folder of a few images per split, five captions each."
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = ["dog", "cat", "red", "blue", "runs", "sits", "grass", "table"]
    for split, n in sizes.items():
        np.save(folder / f"{split}_ims.npy", rng.standard_normal((n, regions, feat)).astype(np.float32))
        caps = [f"A {' '.join(rng.choice(words, 4))}. The end." for _ in range(5 * n)]
        (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return coco_layout(tmp_path_factory.mktemp("recipes") / "coco_like", {"train": 24, "dev": 12, "test": 12})


SMALL = dict(embed_size=32, word_dim=16, sim_dim=8, batch_size=20, progress=False, threads=1, eval_batch_size=64)


@pytest.mark.parametrize("recipe, extra", [
    ("scan_t2i_f30k", {}), ("scan_i2t_coco", {}), ("sgr_f30k", {}), ("saf_coco", {}), ("vse_coco", {}),
    ("dbl_oas_coco", {"anchor_epochs": 1}), ("dbl_mss_f30k", {}),
])
def test_train_with_a_recipe(recipe, extra, folder, tmp_path):
    import dbl_kit
    res = dbl_kit.train(recipe=recipe, dataset=str(folder), runs_path=str(tmp_path), run_name=recipe, epochs=1, **SMALL, **extra)
    cfg = RunDir(res.run_dir).config
    values, record = RECIPES[recipe], cfg["recipe_values"]
    test_eq(cfg["recipe"], recipe)
    test_eq(set(record), set(values))
    given = {"dataset": str(folder), "epochs": 1, **SMALL, **extra}
    for k, (v, source) in values.items():
        test_eq(record[k]["source"], source)
        if k in given:                                   # explicit parameters override the recipe, and it says so
            test_eq(cfg[k], given[k]); assert record[k].get("overridden_by", v) == given[k]
        else: test_eq(cfg[k], v)
    assert np.isfinite(res.metrics["rsum"])
    if cfg["caption_aug"] > 0: assert RunDir(res.run_dir).vocab().idx2word[-1] == "<mask>"


def test_dev_images_scores_the_first_images(folder, tmp_path):
    import dbl_kit
    res = dbl_kit.train(dataset=str(folder), runs_path=str(tmp_path), run_name="dev6", epochs=1, dev_images=6, **SMALL)
    run = RunDir(res.run_dir)
    test_eq(run.sims(run.target, "dev").shape, (6, 30))
    test_eq(run_texts(run, "dev")["captions"], (folder / "dev_caps.txt").read_text().splitlines()[:30])


def test_recipes_command_lists_every_recipe():
    import subprocess, sys
    out = subprocess.run([sys.executable, "-m", "dbl_kit", "recipes"], capture_output=True, text=True, timeout=300)
    test_eq(out.returncode, 0)
    for name in RECIPES: assert f"\n{name}:" in "\n" + out.stdout, name
    assert "--lr_update 0" in describe_recipes("dbl_oas_f30k")

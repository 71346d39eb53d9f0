"A synthetic run directory in the documented format (CONTRACT 'Run directory'), for viz tests without training."
import json
from pathlib import Path

import numpy as np


def _norm(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_fake_run(folder, n_images=(24, 16), captions_per_image=5, dim=12, seed=0, noise=(1.0, 0.6)):
    """Write a two-branch (anchor, target) offline run: captions are noisy copies of a latent point per image,
    the target embeds images with less noise than the anchor. Returns the folder."""
    rng, folder, k = np.random.default_rng(seed), Path(folder), captions_per_image
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("dev", "test"), n_images):
        z = rng.normal(size=(n, dim))
        caps = _norm(np.repeat(z, k, 0) + 0.9 * rng.normal(size=(n * k, dim)))
        for branch, sigma in zip(("anchor", "target"), noise):
            ims = _norm(z + sigma * rng.normal(size=z.shape))
            np.save(folder / f"sims_{branch}_{split}.npy", (ims @ caps.T).astype(np.float16))
            if split == "dev":
                np.save(folder / f"emb_{branch}_dev_images.npy", ims.astype(np.float16))
                np.save(folder / f"emb_{branch}_dev_captions.npy", caps.astype(np.float16))
    config = {"dataset": str(folder / "missing_dataset"), "scenario": "offline", "transfer": "rel_max", "margin": 0.2,
              "beta": 1.0, "epochs": 2, "branches": ["anchor", "target"], "target": "target", "anchor": "anchor",
              "kit_version": "test"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "metrics.json").write_text(json.dumps({"target": "target", "anchor": "anchor", "dataset": "fake",
                                                     "split": "test", "branches": {}, "best_dev": {}}))
    lines = []
    for branch in ("anchor", "target"):
        for epoch in (1, 2):
            lines.append({"epoch": epoch, "step": 10 * epoch, "stage": branch, "branch": branch, "split": "dev",
                          "rsum": 200.0 + 30 * epoch + (20 if branch == "target" else 0),
                          "loss": {"total": 6.0 - epoch, "base": 5.0 - epoch,
                                   "transfer": None if branch == "anchor" else 1.0 / epoch},
                          "lr": 5e-4, "seconds": 1.0})
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder

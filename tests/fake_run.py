"""A synthetic run directory in the documented format (nbs/12_rundir.ipynb, 'The format'), written file by file
without dbl_kit, for tests of the readers (analysis, figures, explorer) that need no training."""
import json
from pathlib import Path

from dbl_kit.rundir import FORMAT_VERSION

import numpy as np


def _norm(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _history(epochs, finished):
    "An offline run's history: the anchor stage, then the target stage (the frozen anchor evaluated once in it)."
    lines = [("anchor", "anchor", e) for e in range(1, epochs + 1)] + [("target", "anchor", 1)]
    lines += [("target", "target", e) for e in range(1, (epochs if finished else 1) + 1)]
    out = []
    for stage, branch, epoch in lines:
        frozen = stage == "target" and branch == "anchor"
        out.append({"epoch": epoch, "step": 10 * epoch, "stage": stage, "branch": branch, "split": "dev",
                    "rsum": 200.0 + 30 * epoch + (20 if branch == "target" else 0),
                    "loss": {} if frozen else {"total": 6.0 - epoch, "base": 5.0 - epoch,
                                                "transfer": None if branch == "anchor" else 1.0 / epoch},
                    "lr": None if frozen else 5e-4, "seconds": 1.0})
    return out


def make_fake_run(folder, n_images=(24, 16), captions_per_image=5, dim=12, seed=0, noise=(1.0, 0.6), epochs=2,
                  finished=True, embeddings=True):
    """Write a two-branch (anchor, target) offline run: captions are noisy copies of a latent point per image,
    the target embeds images with less noise than the anchor. `finished=False`: stopped after the target's first
    epoch (history only); `embeddings=False`: no embedding files, as for a backbone whose encodings are token sets.
    Returns the folder."""
    rng, folder, k = np.random.default_rng(seed), Path(folder), captions_per_image
    folder.mkdir(parents=True, exist_ok=True)
    config = {"dataset": str(folder / "missing_dataset"), "scenario": "offline", "transfer": "rel_max", "margin": 0.2,
              "beta": 1.0, "epochs": epochs, "anchor_epochs": epochs, "branches": ["anchor", "target"],
              "target": "target", "anchor": "anchor", "model": "vse", "kit_version": "test", "format_version": FORMAT_VERSION}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _history(epochs, finished)))
    if not finished:
        return folder
    for split, n in zip(("dev", "test"), n_images):
        z = rng.normal(size=(n, dim))
        caps = _norm(np.repeat(z, k, 0) + 0.9 * rng.normal(size=(n * k, dim)))
        for branch, sigma in zip(("anchor", "target"), noise):
            ims = _norm(z + sigma * rng.normal(size=z.shape))
            np.save(folder / f"sims_{branch}_{split}.npy", (ims @ caps.T).astype(np.float32))
            if split == "dev" and embeddings:
                np.save(folder / f"emb_{branch}_dev_images.npy", ims.astype(np.float16))
                np.save(folder / f"emb_{branch}_dev_captions.npy", caps.astype(np.float16))
    branches = {b: {"rsum": 250.0 + (20 if b == "target" else 0)} for b in ("anchor", "target")}
    (folder / "metrics.json").write_text(json.dumps({"target": "target", "anchor": "anchor", "dataset": "fake",
                                                     "split": "test", "branches": branches, "best_dev": {}}))
    return folder

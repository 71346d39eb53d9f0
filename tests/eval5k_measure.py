"""Time and peak memory of `dbl-kit eval` of an imported SGR model (embed 1024, sim 256, random weights) on a generated
COCO 5K `testall` (5,000 images x 36 regions, 25,000 captions), block by block; not a test (pytest does not collect it).

    python tests/eval5k_measure.py OUT --fraction 20      # score the first 20 images x all 25,000 captions, project to 5K
    python tests/eval5k_measure.py OUT --full             # the whole `dbl-kit eval RUN --dataset OUT/coco_precomp --split testall`

The SGRAF-format checkpoint comes from `published_sgraf` of nbs/23_published.ipynb (executed from the notebook's cell)
and is imported with `dbl_kit.import_checkpoint`, as a downloaded SGRAF model would be."""
import argparse, json, resource, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def generator():
    "The notebook's `published_sgraf` and its vocabulary file (its cell also writes a few files into a temporary folder)."
    nb = json.loads((ROOT / "nbs" / "23_published.ipynb").read_text())
    cell = next("".join(c["source"]) for c in nb["cells"] if "def published_sgraf" in "".join(c["source"]))
    env = {"Path": Path, "torch": torch}
    exec(cell, env)
    return env["published_sgraf"], env["vocab_json"], env["WORDS"]


def make(out: Path, feat: int, seed=0):
    published_sgraf, vocab_json, words = generator()
    folder = out / "coco_precomp"
    if not (folder / "testall_caps.txt").exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for split, n in (("train", 50), ("dev", 50), ("test", 50), ("testall", 5000)):
            np.save(folder / f"{split}_ims.npy", rng.standard_normal((n, 36, feat)).astype(np.float32))
            caps = [" ".join(rng.choice(words, rng.integers(8, 15))) + "." for _ in range(5 * n)]   # COCO: ~10.5 words
            (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n")
    run = out / "sgr_imported"
    if not run.exists():
        ck = out / "model_best.pth.tar"
        torch.save(published_sgraf("SGR", feat=feat, E=1024, word=300, sim=256, regions=36), ck)
        import dbl_kit
        dbl_kit.import_checkpoint(ck, vocab_json, run, dataset=str(folder), evaluate=False)
    return folder, run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out"); p.add_argument("--feat", type=int, default=64)
    p.add_argument("--fraction", type=int, default=0, help="score only the first N images against all 25,000 captions")
    p.add_argument("--full", action="store_true"); p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    folder, run = make(out, a.feat)
    if a.threads: torch.set_num_threads(a.threads)
    info = {"threads": torch.get_num_threads(), "device": a.device, "feat": a.feat}
    if a.fraction:
        from dbl_kit.data import load_split, PrecompSplit
        from dbl_kit.scenarios import encode_split
        from dbl_kit.rundir import RunDir
        part = load_split(folder, "testall")
        sub = PrecompSplit("testall", part.images[:a.fraction], part.captions)   # N images x 25,000 captions
        model, _ = RunDir(run).load_model(device=a.device)
        dev = torch.device(a.device)
        c0, t0 = time.process_time(), time.time()
        img, cap = encode_split(model, sub, RunDir(run).vocab(), dev, 512)   # what evaluate_runs does, in two timed parts
        c1, t1 = time.process_time(), time.time()
        with torch.no_grad(): sims = model.similarity(img, cap)
        c2, t2 = time.process_time(), time.time()
        pairs = sims.shape[0] * sims.shape[1]
        info.update(images=a.fraction, pairs=pairs, encode_seconds=round(t1 - t0, 1), encode_cpu_seconds=round(c1 - c0, 1),
                    similarity_seconds=round(t2 - t1, 1), similarity_cpu_seconds=round(c2 - c1, 1),
                    pairs_per_s=round(pairs / (t2 - t1)), pairs_per_cpu_s=round(pairs / (c2 - c1)),
                    projected_5k_similarity_seconds=round(125_000_000 / (pairs / (t2 - t1))),
                    pair_flops=model.pair_flops(36, float(cap.lengths.float().mean())),
                    peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    if a.full:
        t0 = time.time()
        r = subprocess.run([sys.executable, "-m", "dbl_kit", "eval", str(run), "--dataset", str(folder), "--split", "testall",
                            "--out", str(out / "eval"), "--device", a.device] + (["--threads", str(a.threads)] if a.threads else []))
        info.update(full_seconds=round(time.time() - t0, 1), returncode=r.returncode,
                    full_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
    print(json.dumps(info))


if __name__ == "__main__":
    main()

"dbl-kit eval: the published protocols against per-query loops (tests/reference.py), ensembles, --sims, ECCV Caption / CxC against eccv-caption."
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fastcore.test import test_eq, test_close, test_fail

from dbl_kit.core import KitError
from dbl_kit.data import load_split, Vocab
from dbl_kit.evaluation import evaluate_runs, eccv_metrics, eccv_annotations, ECCV_SHAPE, ensemble
from dbl_kit.rundir import RunDir, EvalDir, open_run
from dbl_kit.analysis import run_texts
from reference import retrieval_metrics as loop_metrics


def check_close(got: dict, ref: dict):
    for key, value in ref.items(): test_close(got[key], value, eps=1e-9)


COLORS, THINGS = ["red", "blue", "green", "white", "black"], ["dog", "cat", "car", "bus", "horse", "bird"]


def coco_layout(folder, sizes, feat=8, regions=3, seed=0):
    "A COCO-layout precomp folder: image i's regions carry its two words' directions; its captions name them."
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((len(COLORS) + len(THINGS), feat)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        c, t = rng.integers(len(COLORS), size=n), rng.integers(len(THINGS), size=n)
        ims = (basis[c][:, None] + basis[len(COLORS) + t][:, None] + 0.5 * rng.standard_normal((n, regions, feat))).astype(np.float32)
        np.save(folder / f"{split}_ims.npy", ims)
        lines = [f"A {COLORS[c[i]]} {THINGS[t[i]]}. Photo {j}." for i in range(n) for j in range(5)]
        (folder / f"{split}_caps.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.numeric
def test_protocols_of_a_matrix_equal_the_reference_loop(tmp_path):
    "COCO 5K = the whole matrix, COCO 1K = the mean over folds of 1,000 images, each from the per-query reference loop."
    folder = coco_layout(tmp_path / "coco_like", {"testall": 2000})
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((2000, 10000)).astype(np.float32)
    sims += 2.5 * (np.arange(10000)[None] // 5 == np.arange(2000)[:, None])     # recalls neither 0 nor 100
    sims[3, :] = sims[3, 15]                                                    # a row of ties: they count against the query
    np.save(tmp_path / "sims.npy", sims)
    r = evaluate_runs(sims=[tmp_path / "sims.npy"], dataset=str(folder), split="testall", out=tmp_path / "e", progress=False)
    check_close(r["protocols"]["coco_5k"], loop_metrics(sims))
    folds = [loop_metrics(sims[f * 1000:(f + 1) * 1000, f * 5000:(f + 1) * 5000]) for f in range(2)]
    check_close(r["protocols"]["coco_1k"], {k: np.mean([f[k] for f in folds]) for k in folds[0]})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    "Two tiny vse runs (seeds 0, 1) trained on a COCO-layout folder whose testall has 2,000 images."
    from dbl_kit.trainer import train
    root = tmp_path_factory.mktemp("eval")
    folder = coco_layout(root / "coco_like", {"train": 60, "dev": 20, "test": 20, "testall": 2000})
    runs = [train(dataset=str(folder), runs_path=str(root / "runs"), run_name=f"r{s}", seed=s, epochs=1, embed_size=16,
                  word_dim=16, batch_size=32, progress=False, threads=1).run_dir for s in (0, 1)]
    return folder, runs


def test_protocols_equal_a_loop_and_ensemble_is_the_mean(two_runs, tmp_path):
    folder, (a, b) = two_runs
    ra = evaluate_runs([a], dataset=str(folder), split="testall", out=tmp_path / "a", progress=False, threads=1)
    rb = evaluate_runs([b], dataset=str(folder), split="testall", out=tmp_path / "b", progress=False, threads=1)
    sa, sb = np.load(tmp_path / "a" / "sims.npy"), np.load(tmp_path / "b" / "sims.npy")
    # the matrix is the run's own: its encodings' dot products
    run = RunDir(a); model, _ = run.load_model()
    part, vocab = load_split(folder, "testall"), run.vocab()
    with torch.no_grad():
        img = model.encode_images(torch.from_numpy(np.array(part.images[:7])))
        from dbl_kit.data import pad_tokens
        tok, lens = pad_tokens([torch.tensor(vocab.encode_text(c)) for c in part.captions[:9]])
        ref = (img @ model.encode_texts(tok, lens).T).numpy()
    test_close(sa[:7, :9], ref, eps=1e-5 * float(np.abs(ref).max()))
    # COCO 5K = the whole matrix, COCO 1K = the mean over folds of 1,000 images, each from a per-query loop
    check_close(ra["protocols"]["coco_5k"], loop_metrics(sa))
    folds = [loop_metrics(sa[f * 1000:(f + 1) * 1000, f * 5000:(f + 1) * 5000]) for f in range(2)]
    check_close(ra["protocols"]["coco_1k"], {k: np.mean([f[k] for f in folds]) for k in folds[0]})
    # an ensemble's matrix is its members' (weighted) mean, and its metrics are the mean matrix's
    re_ = evaluate_runs([a, b], dataset=str(folder), split="testall", out=tmp_path / "ab", weights=[3, 1], progress=False)
    se = np.load(tmp_path / "ab" / "sims.npy")
    test_close(se, 0.75 * sa + 0.25 * sb, eps=1e-6 * float(np.abs(se).max()))
    check_close(re_["protocols"]["coco_5k"], loop_metrics(se))
    test_close([m["weight"] for m in re_["members"]], [0.75, 0.25], eps=1e-12)
    check_close(re_["members"][1]["metrics"]["coco_5k"], loop_metrics(sb))
    # --sims: the same matrix from elsewhere scores the same
    rs = evaluate_runs(sims=[tmp_path / "a" / "sims.npy"], dataset=str(folder), split="testall", out=tmp_path / "s", progress=False)
    test_eq(rs["protocols"], ra["protocols"])


def test_f30k_style_test_split_and_default_folder(two_runs):
    folder, (a, _) = two_runs
    r = evaluate_runs(a, split="test", progress=False)     # dataset: the run's; folder: RUN/eval-<dataset>-test
    test_eq(list(r["protocols"]), ["all"])
    out = Path(a) / f"eval-{folder.name}-test"
    test_eq(r["out"], str(out))
    check_close(r["protocols"]["all"], loop_metrics(np.load(out / "sims.npy")))
    e = open_run(out)
    assert isinstance(e, EvalDir) and e.available_splits() == ["test"] and e.sims("eval").shape == (20, 100)
    assert run_texts(e, "test")["captions"][0].startswith("A ")       # the explorer's texts come from the dataset


def test_cli_eval_and_report(two_runs, tmp_path):
    folder, (a, b) = two_runs
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "dbl_kit", "eval", str(a), str(b), "--dataset", str(folder), "--split", "testall",
                        "--out", str(out), "--weights", "1,1", "--quiet", "--threads", "1"], capture_output=True, text=True, timeout=600)
    test_eq(r.returncode, 0)
    assert "COCO 1K" in r.stdout and "COCO 5K" in r.stdout and "member 2" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    test_eq(np.load(out / "sims.npy").dtype, np.float32)
    rep = subprocess.run([sys.executable, "-m", "dbl_kit", "report", str(out)], capture_output=True, text=True, timeout=600)
    test_eq(rep.returncode, 0)
    assert f"{m['protocols']['coco_5k']['rsum']:8.1f}" in rep.stdout
    bad = subprocess.run([sys.executable, "-m", "dbl_kit", "eval", str(a), "--dataset", str(folder), "--split", "nosuch"],
                         capture_output=True, text=True, timeout=600)
    test_eq(bad.returncode, 2)
    assert "--split 'nosuch' is not in" in bad.stderr


def test_bad_inputs(two_runs, tmp_path):
    folder, (a, _) = two_runs
    test_fail(lambda: evaluate_runs([], progress=False), contains="Nothing to evaluate")
    test_fail(lambda: evaluate_runs(sims=[tmp_path / "none.npy"], dataset=str(folder), split="test", progress=False), contains="does not exist")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 15), np.float32))
    test_fail(lambda: evaluate_runs(sims=[tmp_path / "wrong.npy"], dataset=str(folder), split="test", progress=False), contains="has shape (3, 15)")
    test_fail(lambda: evaluate_runs([a, a], dataset=str(folder), split="test", weights=[1], progress=False), contains="one per member")
    other = coco_layout(tmp_path / "wide", {"test": 4}, feat=5)
    test_fail(lambda: evaluate_runs([a], dataset=str(other), split="test", progress=False), contains="8-dimensional")


# ---- ECCV Caption and CxC against eccv-caption's own computation -------------------------------------------------------
def _package_lists(sims, ann, depth=100):
    "The retrieved-item dicts eccv-caption takes (COCO ids, best first), cut at `depth` (>= every query's positives, >= 10)."
    cids = [int(c) for c in ann.coco_ids]
    iids = [ann.coco_gts["t2i"][c][0] for c in cids[::5]]
    def top(m):   # no ties in a random continuous matrix: the partition's best `depth`, sorted
        part = np.argpartition(-m, depth, axis=1)[:, :depth]
        return np.take_along_axis(part, np.argsort(-np.take_along_axis(m, part, 1), axis=1), 1)
    top_c, top_i = top(sims), top(np.ascontiguousarray(sims.T))
    return ({iids[i]: [cids[j] for j in row] for i, row in enumerate(top_c)},
            {cids[j]: [iids[i] for i in row] for j, row in enumerate(top_i)})


def test_eccv_and_cxc_equal_the_package():
    pytest.importorskip("eccv_caption")
    ann = eccv_annotations()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5000, 32)).astype(np.float32)
    sims = z @ (np.repeat(z, 5, 0) + 1.5 * rng.standard_normal((25000, 32)).astype(np.float32)).T
    assert sims.shape == ECCV_SHAPE
    i2t, t2i = _package_lists(sims, ann)
    ref = ann.compute_all_metrics(i2t, t2i, target_metrics=("eccv_r1", "eccv_map_at_r", "eccv_rprecision", "cxc_recalls",
                                                            "coco_5k_recalls"), Ks=(1, 5, 10), verbose=False)
    got = eccv_metrics(sims, ann)
    for key in ("eccv_r1", "eccv_map_at_r", "eccv_rprecision", "cxc_r1", "cxc_r5", "cxc_r10"):
        for d in ("i2t", "t2i"): test_close(got[key][d], 100 * ref[key][d], eps=1e-9)
    # the package's COCO 5K recalls (its own image-caption pairs) equal the kit's 5K protocol on the SCAN order
    from dbl_kit.metrics import retrieval_metrics
    m = retrieval_metrics(sims)
    for K in (1, 5, 10):
        for d in ("i2t", "t2i"): test_close(m[f"{d}_r{K}"], 100 * ref[f"coco_5k_r{K}"][d], eps=1e-9)
    print({k: {d: round(v, 3) for d, v in x.items()} for k, x in got.items()})


def test_eccv_needs_the_5k_matrix():
    test_fail(lambda: eccv_metrics(np.zeros((1000, 5000), np.float32)), contains="COCO 5K")


def test_explorer_reads_an_eval_folder(two_runs, tmp_path):
    pytest.importorskip("ipywidgets")
    from dbl_kit.explorer import Explorer
    folder, (a, b) = two_runs
    evaluate_runs([a, b], dataset=str(folder), split="test", out=tmp_path / "ens", progress=False)
    ex = Explorer(tmp_path / "ens", umap_images=0)
    assert "evaluation of 2 member(s)" in ex.status.value
    test_eq((ex.split.value, ex.branch_b.value), ("test", "eval"))
    assert "distances" in ex.figures and "separability" in ex.figures
    assert "A " in ex.inspector.value                    # the query inspector shows the dataset's captions

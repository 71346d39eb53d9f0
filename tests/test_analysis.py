"dbl_kit.analysis against brute-force references (tests/reference.py): triplet statistics, summaries, top matches, history across stages."
import json, os

import numpy as np
import pytest
import torch
from fastcore.test import test_eq, test_close, test_fail

from dbl_kit.core import KitError
from dbl_kit import analysis
from dbl_kit.rundir import open_run
from dbl_kit.analysis import run_texts
from fake_run import make_fake_run
from reference import triplet_stats as loop_stats


def check_against_loop(df, sims, k, eps=1e-6):
    ref = loop_stats(sims, k)
    for d in ("i2t", "t2i"):
        part, expect = df[df.direction == d], np.array(ref[d])
        test_eq(part["query"].tolist(), list(range(len(expect))))
        test_close(part[["positive", "hardest_negative", "relative"]].to_numpy(), expect[:, :3], eps=eps)
        test_eq(part["rank"].tolist(), expect[:, 3].astype(int).tolist())


@pytest.mark.numeric
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_images", [2, 7, 13])
def test_triplet_stats_matches_loop(seed, n_images):
    rng = np.random.default_rng(seed)
    sims = rng.uniform(-1, 1, size=(n_images, 5 * n_images)).astype(np.float32)
    check_against_loop(analysis.triplet_stats(sims, 5), sims, 5)
    # small blocks exercise the block boundaries
    check_against_loop(analysis.triplet_stats(sims, 5, block_elems=3 * sims.shape[1]), sims, 5)


@pytest.mark.numeric
def test_triplet_stats_ties_and_inputs():
    rng = np.random.default_rng(1)
    sims = np.round(rng.uniform(0, 1, size=(9, 45)), 1).astype(np.float32)    # many exact ties
    check_against_loop(analysis.triplet_stats(sims, 5), sims, 5)
    half = sims.astype(np.float16)
    check_against_loop(analysis.triplet_stats(torch.from_numpy(half), 5), half, 5, eps=1e-3)
    test_eq(set(analysis.triplet_stats(sims, 5, direction="t2i").direction), {"t2i"})
    test_eq(len(analysis.triplet_stats(sims, 5, direction="i2t")), 9)


def test_triplet_stats_errors():
    test_fail(lambda: analysis.triplet_stats(np.zeros((4, 12)), 5), exc=KitError, contains="captions_per_image=5")
    test_fail(lambda: analysis.triplet_stats(np.zeros((4, 20)), 5, direction="x2y"), exc=KitError, contains="direction='x2y'")
    bad = np.zeros((3, 15)); bad[1, 2] = np.nan
    test_fail(lambda: analysis.triplet_stats(bad, 5), exc=KitError, contains="NaN")


@pytest.mark.numeric
def test_top_matches_matches_sorting_loop():
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(6, 30)).astype(np.float32)
    for q in range(6):
        top = analysis.top_matches(sims, q, "i2t", k=5)
        ref = sorted(range(30), key=lambda j: -sims[q, j])[:5]
        test_eq(top["index"].tolist(), ref)
        test_eq(top["positive"].tolist(), [j // 5 == q for j in ref])
    top = analysis.top_matches(sims, 17, "t2i", k=3)
    ref = sorted(range(6), key=lambda i: -sims[i, 17])[:3]
    test_eq(top["index"].tolist(), ref)
    test_eq(top["positive"].tolist(), [i == 3 for i in ref])
    test_fail(lambda: analysis.top_matches(sims, 6, "i2t"), exc=KitError, contains="0..5")


@pytest.fixture()
def run_dir(tmp_path):
    return make_fake_run(tmp_path / "runs" / "fake")


def test_rundir_reads_a_fake_run(run_dir):
    "The fake run is written without dbl_kit: RunDir reads what the readers here rely on."
    run = open_run(run_dir)
    test_eq(run.branches, ["anchor", "target"])
    test_eq(run.default_pair(), ("anchor", "target"))
    test_eq((run.captions_per_image(), run.available_splits()), (5, ["dev", "test"]))
    test_eq(run.sims("target", "test").shape, (16, 80))
    ims, caps = run.embeddings("anchor")
    test_eq((ims.shape, caps.shape, ims.dtype), ((24, 12), (120, 12), np.float32))
    texts = run_texts(run, "dev")
    test_eq(texts["images"][3], "image 3")
    assert texts["note"]                               # the fake dataset folder does not exist
    test_eq(run.status(), "finished: test rSum 270.0 (target)")


def test_run_errors_name_the_folder(run_dir, tmp_path):
    empty = tmp_path / "empty"; empty.mkdir()
    for folder, expect in [(tmp_path / "nope", "does not exist"), (run_dir / "config.json", "is a file"),
                           (run_dir.parent, "folder of runs"), (tmp_path / "runs" / "fake" / "..", "folder of runs"),
                           (empty, "no config.json")]:
        test_fail(lambda: analysis.run_stats(folder, "target"), exc=KitError, contains=expect)
    (run_dir / "sims_target_test.npy").unlink()
    test_fail(lambda: analysis.run_stats(run_dir, "target", "test"), exc=KitError, contains="sims_target_test.npy")
    test_eq(open_run(run_dir).available_splits(), ["dev"])
    test_fail(lambda: analysis.run_stats(run_dir, "student"), exc=KitError, contains="anchor, target")
    test_fail(lambda: analysis.run_stats(run_dir, "target", "train"), exc=KitError, contains="'dev' and 'test'")
    cfg = json.loads((run_dir / "config.json").read_text()); del cfg["branches"]
    (run_dir / "config.json").write_text(json.dumps(cfg))
    test_fail(lambda: analysis.branch_stats(run_dir), exc=KitError, contains="branches")


@pytest.mark.numeric
def test_run_stats_is_cached_per_file(run_dir):
    a = analysis.run_stats(run_dir, "target", "dev", "i2t")
    assert analysis.run_stats(open_run(run_dir), "target", "dev", "i2t") is a
    check_against_loop(analysis.run_stats(run_dir, "target"), np.load(run_dir / "sims_target_dev.npy"), 5)
    # a rewritten matrix is read again
    sims = np.load(run_dir / "sims_target_dev.npy"); sims[:, ::5] += 1.0
    np.save(run_dir / "sims_target_dev.npy", sims)
    later = (run_dir / "sims_target_dev.npy").stat().st_mtime_ns + 10**9     # a run trained again, a second later
    os.utime(run_dir / "sims_target_dev.npy", ns=(later, later))
    b = analysis.run_stats(run_dir, "target", "dev", "i2t")
    assert b is not a
    test_close(b.positive.to_numpy(), sims.reshape(24, 24, 5)[np.arange(24), np.arange(24)].max(1), eps=1e-6)


@pytest.mark.numeric
def test_distance_summary_matches_loop(run_dir):
    summary = analysis.distance_summary(run_dir, margin=0.1)
    test_eq(len(summary), 4)                            # branches x directions
    ref = loop_stats(np.load(run_dir / "sims_target_dev.npy"), 5)["t2i"]
    row = summary[(summary.branch == "target") & (summary.direction == "t2i")].iloc[0]
    test_close(row["relative"], np.mean([r[2] for r in ref]))
    test_close(row["relative>0.1 (%)"], 100 * np.mean([r[2] > 0.1 for r in ref]))    # both shares in percent
    test_close(row["R@1 (%)"], 100 * np.mean([r[3] == 1 for r in ref]))
    test_eq(analysis.distance_summary(run_dir).columns[-2], "relative>0.2 (%)")      # the run's training margin


@pytest.mark.numeric
def test_separation_fraction_matches_count():
    rel = np.random.default_rng(0).normal(size=101)
    for m in (-1.0, 0.0, 0.3, rel[17]):
        test_close(analysis.separation_fraction(rel, m), np.mean(rel > m))


def test_inspect_query_texts_and_truth(run_dir):
    info = analysis.inspect_query(run_dir, 7, direction="t2i", k=3)
    test_eq((info["query"], info["truth"]), ("caption 7", ["image 1"]))
    sims = np.load(run_dir / "sims_target_dev.npy")
    test_eq(info["target"]["index"].tolist(), list(np.argsort(-sims[:, 7], kind="stable")[:3]))
    test_eq(info["target"]["text"].tolist(), [f"image {i}" for i in info["target"]["index"]])
    assert "missing_dataset" in info["note"]


def test_history_counts_epochs_across_stages(run_dir):
    h = analysis.history_frame(run_dir)
    test_eq(h.loc[h.stage == "anchor", "run_epoch"].tolist(), [1.0, 2.0])
    test_eq(h.loc[h.branch == "target", "run_epoch"].tolist(), [3.0, 4.0])
    test_eq(h.loc[h.branch == "target", "epoch"].tolist(), [1, 2])              # the stage's own epochs stay
    test_eq(h.loc[h.branch == "target", "run_step"].tolist(), [30.0, 40.0])
    test_eq(h["loss_transfer"].notna().sum(), 2)
    test_eq(analysis.stage_spans(run_dir).values.tolist(), [["anchor", 1.0, 2.0], ["target", 3.0, 4.0]])
    # a table comes back as is; records without stages are one stage
    assert analysis.history_frame(h) is h
    one = analysis.history_frame([{"epoch": e, "branch": "baseline", "rsum": 1.0} for e in (1, 2, 3)])
    test_eq((one.stage.tolist(), one.run_epoch.tolist()), (["train"] * 3, [1.0, 2.0, 3.0]))


def test_unfinished_run_has_history_only(tmp_path):
    run_dir = make_fake_run(tmp_path / "runs" / "open", finished=False)
    run = open_run(run_dir)
    test_eq((run.finished, run.available_splits()), (False, []))
    test_eq(analysis.history_frame(run).run_epoch.tolist(), [1.0, 2.0, 3.0, 3.0])
    test_fail(lambda: analysis.distance_summary(run), exc=KitError, contains="is missing")


def test_toy_run_separates_better_in_the_target(tmp_path):
    run = analysis.toy_run(tmp_path / "runs", "toy", n_images=(20, 10))
    s = analysis.distance_summary(run).set_index(["branch", "direction"])
    assert s.loc[("target", "i2t"), "relative"] > s.loc[("anchor", "i2t"), "relative"]
    test_eq(run.status().startswith("finished: test rSum"), True)
    test_eq(analysis.toy_run(tmp_path / "runs", "toy").name, "toy-1")

"""dbl_kit.stats: the paired bootstrap over test query units and the summaries over seeds, checked against plain
metric differences, against a per-sample recomputation from the resampled queries, and against hand computations."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dbl_kit.core import KitError
from dbl_kit.metrics import retrieval_metrics, retrieval_ranks
from dbl_kit.stats import (STAT_KEYS, bootstrap_means, compare_runs, paired_bootstrap, paired_seed_differences,
                           query_units, seed_summary)
from fake_run import make_fake_run

pytestmark = pytest.mark.numeric


def toy_sims(n_img=30, k=5, signal=1.0, seed=0, dtype=np.float32):
    "Random [n_img, k n_img] scores whose positives are `signal` higher on average."
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n_img, k * n_img))
    s[np.arange(k * n_img) // k, np.arange(k * n_img)] += signal
    return s.astype(dtype)


# ---------------------------------------------------------------- query units
@pytest.mark.parametrize("k", (1, 2, 5))
def test_unit_means_are_the_metrics(k):
    sims = toy_sims(25, k, seed=k)
    m = retrieval_metrics(sims, k)
    assert query_units(sims, k).mean(0) == pytest.approx([m[key] for key in STAT_KEYS], rel=1e-12, abs=1e-12)
    # captions per image inferred from the shape; tensors accepted
    assert np.array_equal(query_units(torch.from_numpy(sims)), query_units(sims, k))


# ---------------------------------------------------------------- paired bootstrap
def test_point_estimate_is_the_plain_metric_difference(tmp_path):
    a, b = toy_sims(40, signal=1.2, seed=1), toy_sims(40, signal=0.8, seed=2)
    ma, mb = retrieval_metrics(a), retrieval_metrics(b)
    np.save(tmp_path / "a.npy", a)
    for first in (a, tmp_path / "a.npy", str(tmp_path / "a.npy")):
        res = paired_bootstrap(first, b, n_boot=300, seed=3)
        for key in STAT_KEYS:
            assert res.loc[key, "diff"] == pytest.approx(ma[key] - mb[key], abs=1e-9)
            assert res.loc[key, "a"] == pytest.approx(ma[key], abs=1e-9)
            assert res.loc[key, "b"] == pytest.approx(mb[key], abs=1e-9)
            assert res.loc[key, "low"] <= res.loc[key, "high"]


def test_identical_runs_give_a_zero_interval():
    sims = toy_sims(50, seed=4)
    res = paired_bootstrap(sims, sims.copy(), n_boot=1000)
    assert np.abs(res[["diff", "low", "high", "se"]].values).max() < 1e-12
    assert (res["p_le_0"] == 1).all()


def test_strictly_better_matrix_gives_an_interval_above_zero():
    "B adds 1.5 to every positive of A: no query's rank gets worse and many improve."
    a = toy_sims(60, signal=0.5, seed=5)
    b = a.copy()
    n_cap = b.shape[1]
    b[np.arange(n_cap) // 5, np.arange(n_cap)] += 1.5
    ra, rb = retrieval_ranks(a, 5), retrieval_ranks(b, 5)
    assert (rb[0] <= ra[0]).all() and (rb[1] <= ra[1]).all()
    res = paired_bootstrap(b, a, n_boot=2000, seed=0)
    for key in STAT_KEYS:
        if res.loc[key, "diff"] > 0:
            assert res.loc[key, "low"] >= 0, key
    assert res.loc["rsum", "low"] > 0 and res.loc["rsum", "p_le_0"] == 0
    swapped = paired_bootstrap(a, b, n_boot=2000, seed=0)
    assert swapped.loc["rsum", "high"] < 0
    assert swapped.loc["rsum", "diff"] == pytest.approx(-res.loc["rsum", "diff"])


def test_each_sample_is_the_metric_of_a_resampled_query_set():
    """Image queries and caption queries are resampled jointly: a sample's i2t recalls average the drawn images'
    i2t ranks, its t2i recalls the ranks of all captions of the drawn images (k per draw, repeats included).
    The draws are replayed from the same numpy generator (one batch of `integers(0, n, (n_boot, n))`)."""
    n, k, n_boot, seed = 12, 5, 6, 17
    a, b = toy_sims(n, k, seed=8), toy_sims(n, k, seed=9)
    samples = bootstrap_means(query_units(a, k) - query_units(b, k), n_boot, seed)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    def metrics_of(sims, idx):
        i2t, t2i = retrieval_ranks(sims, k)
        caps = np.concatenate([np.arange(u * k, (u + 1) * k) for u in idx])
        rec = [100 * np.mean(i2t[idx] <= K) for K in (1, 5, 10)] + [100 * np.mean(t2i[caps] <= K) for K in (1, 5, 10)]
        return np.array(rec + [sum(rec)])
    for s in range(n_boot):
        assert samples[s] == pytest.approx(metrics_of(a, draws[s]) - metrics_of(b, draws[s]), abs=1e-9)


def test_bootstrap_spread_matches_the_standard_error():
    "The bootstrap standard error of a mean is about std(units)/sqrt(n)."
    units = np.random.default_rng(0).normal(size=(400, 3)) * [1.0, 5.0, 0.1]
    samples = bootstrap_means(units, 4000, seed=1)
    expected = units.std(0, ddof=0) / math.sqrt(400)
    assert samples.std(0) == pytest.approx(expected, rel=0.08)
    assert (np.abs(samples.mean(0) - units.mean(0)) < 5 * expected / math.sqrt(4000)).all()


def test_bootstrap_is_seeded_and_batched():
    units = np.random.default_rng(2).normal(size=(7, 2))
    assert np.array_equal(bootstrap_means(units, 50, seed=3), bootstrap_means(units, 50, seed=3))
    assert not np.array_equal(bootstrap_means(units, 50, seed=3), bootstrap_means(units, 50, seed=4))
    big = np.random.default_rng(2).normal(size=(5000, 2))             # several batches of samples
    assert bootstrap_means(big, 2000, seed=0).shape == (2000, 2)


def test_errors():
    a = toy_sims(10)
    with pytest.raises(KitError, match="differ in shape"):
        paired_bootstrap(a, toy_sims(12))
    with pytest.raises(KitError, match="level"):
        paired_bootstrap(a, a, level=95)
    with pytest.raises(KitError, match="captions_per_image"):
        paired_bootstrap(a, a, captions_per_image=3)
    with pytest.raises(KitError, match="not a file"):
        paired_bootstrap("/nonexistent/sims.npy", a)
    with pytest.raises(KitError, match="n_boot"):
        bootstrap_means(np.zeros((3, 1)), 0)


def test_compare_runs_reads_target_branches(tmp_path):
    run_a = make_fake_run(tmp_path / "a", seed=0)
    run_b = make_fake_run(tmp_path / "b", seed=1)
    res = compare_runs(run_a, run_b, n_boot=200)
    sims_a = np.load(tmp_path / "a" / "sims_target_test.npy")
    sims_b = np.load(tmp_path / "b" / "sims_target_test.npy")
    assert res.loc["rsum", "diff"] == pytest.approx(retrieval_metrics(sims_a)["rsum"] - retrieval_metrics(sims_b)["rsum"])
    own = compare_runs(run_a, run_a, branch_a="target", branch_b="anchor", n_boot=200)
    assert own.loc["rsum", "a"] == pytest.approx(retrieval_metrics(sims_a)["rsum"])


# ---------------------------------------------------------------- seeds
T_975 = {2: 4.302653, 3: 3.182446}   # Student t quantiles 0.975 for 2 and 3 degrees of freedom (printed tables)


def runs_table():
    return pd.DataFrame({
        "setting": ["baseline"] * 4 + ["dbl"] * 4 + ["kd"] * 3,
        "seed":    [0, 1, 2, 3,        0, 1, 2, 3,   0, 1, 3],
        "rsum":    [400., 402., 404., 398.,  401., 405., 403., 401.,  399., 403., 398.],
    })


def test_seed_summary_by_hand():
    s = seed_summary(runs_table())
    assert list(s.index) == ["baseline", "dbl", "kd"]
    # baseline: 400, 402, 404, 398 -> mean 401, squares of deviations 1+1+9+9 = 20, var 20/3
    assert s.loc["baseline", "n"] == 4
    assert s.loc["baseline", "mean"] == pytest.approx(401.0)
    sd = math.sqrt(20 / 3)
    assert s.loc["baseline", "std"] == pytest.approx(sd)
    half = T_975[3] * sd / 2
    assert s.loc["baseline", ["low", "high"]].tolist() == pytest.approx([401 - half, 401 + half], rel=1e-6)


def test_paired_differences_by_hand():
    p = paired_seed_differences(runs_table(), baseline="baseline")
    assert p["setting"].tolist() == ["dbl", "kd"] and (p["versus"] == "baseline").all()
    # dbl - baseline over seeds 0..3: 1, 3, -1, 3 -> mean 1.5, deviations -0.5, 1.5, -2.5, 1.5: squares 11, var 11/3
    dbl = p.iloc[0]
    assert (dbl["n"], dbl["wins"], dbl["seeds"]) == (4, 3, [0, 1, 2, 3])
    assert dbl["mean"] == pytest.approx(1.5) and dbl["std"] == pytest.approx(math.sqrt(11 / 3))
    half = T_975[3] * math.sqrt(11 / 3) / 2
    assert [dbl["low"], dbl["high"]] == pytest.approx([1.5 - half, 1.5 + half], rel=1e-6)
    # kd ran seeds 0, 1, 3 only: the pairs are those seeds. kd - baseline: -1, 1, 0 -> mean 0, std 1
    kd = p.iloc[1]
    assert (kd["n"], kd["wins"], kd["seeds"]) == (3, 1, [0, 1, 3])
    half = T_975[2] * 1 / math.sqrt(3)
    assert [kd["mean"], kd["std"], kd["low"], kd["high"]] == pytest.approx([0, 1, -half, half], abs=1e-6)


def test_all_pairs_and_degenerate_cases():
    p = paired_seed_differences(runs_table())
    assert list(zip(p["setting"], p["versus"])) == [("dbl", "baseline"), ("kd", "baseline"), ("kd", "dbl")]
    const = pd.DataFrame({"setting": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "rsum": [1.0, 2.0, 3.0, 4.0]})
    row = paired_seed_differences(const, baseline="a").iloc[0]
    assert (row["mean"], row["std"], row["low"], row["high"]) == pytest.approx((2.0, 0.0, 2.0, 2.0), abs=1e-12)   # zero width
    single = pd.DataFrame({"setting": ["a", "b"], "seed": [0, 0], "rsum": [1.0, 2.0]})
    row = paired_seed_differences(single, baseline="a").iloc[0]
    assert row["n"] == 1 and row["mean"] == pytest.approx(1.0, abs=1e-12) and all(math.isnan(row[c]) for c in ("std", "low", "high"))
    assert math.isnan(seed_summary(single).loc["a", "std"])
    # another metric and other column names
    other = runs_table().rename(columns={"setting": "transfer", "seed": "run_seed"}).assign(i2t_r1=lambda d: d.rsum / 10)
    s = seed_summary(other, metric="i2t_r1", by="transfer", seed="run_seed")
    assert s.loc["baseline", "mean"] == pytest.approx(40.1)


def test_seed_errors():
    with pytest.raises(KitError, match="several runs with seed 0"):
        seed_summary(pd.concat([runs_table(), runs_table().iloc[:1]]))
    with pytest.raises(KitError, match="lacks column"):
        seed_summary(runs_table(), metric="r@1")
    with pytest.raises(KitError, match="baseline 'vse'"):
        paired_seed_differences(runs_table(), baseline="vse")

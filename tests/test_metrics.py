"""dbl_kit.metrics against brute force (tests/reference.py): one argsort per query, ranks read off the sorted order
(the VSE++/SCAN evaluation loop), and ranks by counting where scores tie."""
import numpy as np
import pytest
import torch

import dbl_kit.metrics as metrics
import reference
from dbl_kit.core import KitError
from dbl_kit.metrics import coco_1k_metrics, retrieval_metrics, retrieval_ranks
from reference import METRIC_KEYS as KEYS, argsort_ranks, ranks as counted_ranks

pytestmark = pytest.mark.numeric



def assert_metrics_equal(got, expected):
    assert list(got) == KEYS
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key


SHAPES = [(1, 1), (1, 5), (2, 5), (3, 2), (7, 5), (20, 1), (33, 3), (60, 5)]


@pytest.mark.parametrize("n_img,k", SHAPES)
def test_ranks_and_metrics_equal_brute_force(n_img, k):
    rng = np.random.default_rng(n_img * 10 + k)
    # a shared positive offset makes the right pairs likelier, so recalls are neither all 0 nor all 100
    sims = rng.standard_normal((n_img, n_img * k)) + 1.5 * (np.arange(n_img * k)[None] // k == np.arange(n_img)[:, None])
    i2t, t2i = argsort_ranks(sims, k)
    got_i2t, got_t2i = retrieval_ranks(sims, k)
    assert got_i2t.dtype == np.int64 and np.array_equal(got_i2t, i2t) and np.array_equal(got_t2i, t2i)
    assert_metrics_equal(retrieval_metrics(sims, k), reference.metrics(i2t.tolist(), t2i.tolist()))
    # float32 numpy and torch input give the same ranks as brute force on the same values
    for variant in (sims.astype(np.float32), torch.tensor(sims), torch.tensor(sims, dtype=torch.float32)):
        values = variant.double().numpy() if isinstance(variant, torch.Tensor) else variant.astype(np.float64)
        got, expected = retrieval_ranks(variant, k), argsort_ranks(values, k)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def test_best_caption_is_not_the_first():
    # image 0's captions are columns 0, 1: column 0 ranks last in its row, column 1 second (behind caption 2)
    sims = np.array([[0.10, 0.60, 0.90, 0.30],
                     [0.20, 0.40, 0.35, 0.70]])
    i2t, t2i = retrieval_ranks(sims, 2)
    assert i2t.tolist() == [2, 1] and t2i.tolist() == [2, 1, 2, 1]
    assert [r.tolist() for r in argsort_ranks(sims, 2)] == [[2, 1], [2, 1, 2, 1]]
    got = retrieval_metrics(sims, 2)
    hand = {"i2t_r1": 50.0, "i2t_r5": 100.0, "i2t_medr": 1.0, "i2t_meanr": 1.5, "t2i_r1": 50.0, "t2i_meanr": 1.5, "rsum": 500.0}
    assert {key: got[key] for key in hand} == pytest.approx(hand, abs=1e-9)


def test_medr_is_floor_of_median():
    # every row is 4, 3, 2, 1 (+ a per-row offset): image i's caption sits at rank i + 1, so i2t ranks are 1, 2, 3, 4;
    # the offset makes image 3 win every column, so t2i ranks are 4, 3, 2, 1. Median 2.5 -> medr 2.
    sims = np.array([[4.0, 3.0, 2.0, 1.0]] * 4) + 0.01 * np.arange(4)[:, None]
    i2t, t2i = retrieval_ranks(sims, 1)
    assert i2t.tolist() == [1, 2, 3, 4] and t2i.tolist() == [4, 3, 2, 1]
    got = retrieval_metrics(sims, 1)
    for d in ("i2t", "t2i"):
        assert (got[f"{d}_r1"], got[f"{d}_r5"], got[f"{d}_medr"], got[f"{d}_meanr"]) == pytest.approx((25.0, 100.0, 2.0, 2.5), abs=1e-9)


@pytest.mark.parametrize("n_img,k", [(5, 5), (30, 5), (12, 2)])
def test_ties_count_against_the_query(n_img, k):
    rng = np.random.default_rng(n_img)
    coarse = rng.integers(0, 4, size=(n_img, n_img * k)).astype(np.float16)   # many exact ties
    i2t, t2i = retrieval_ranks(coarse, k)
    bi2t, bt2i = counted_ranks(coarse, k)
    assert np.array_equal(i2t, bi2t) and np.array_equal(t2i, bt2i)
    i2t_t, t2i_t = retrieval_ranks(torch.tensor(coarse), k)                  # float16 tensor
    assert np.array_equal(i2t_t, bi2t) and np.array_equal(t2i_t, bt2i)


def test_collapsed_model_gets_the_worst_ranks():
    got = retrieval_metrics(np.zeros((12, 60), dtype=np.float16))      # 12 images, 5 captions each, all scores equal
    assert (got["rsum"], got["i2t_medr"], got["t2i_medr"]) == pytest.approx((0.0, 60 - 5 + 1, 12), abs=1e-9)


def test_blocks_give_the_same_ranks(monkeypatch):
    rng = np.random.default_rng(3)
    sims = rng.standard_normal((23, 115)).astype(np.float32)
    expected = argsort_ranks(sims, 5)
    for elements in (1, 115, 500, 10_000):                               # 1 row per block ... all rows at once
        monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", elements)
        got = retrieval_ranks(sims, 5)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def test_coco_1k_is_the_mean_over_folds():
    rng = np.random.default_rng(5)
    n_img, k, fold = 100, 5, 20
    sims = rng.standard_normal((n_img, n_img * k)) + 2.0 * (np.arange(n_img * k)[None] // k == np.arange(n_img)[:, None])
    folds = []
    for f in range(5):
        block = sims[f * fold:(f + 1) * fold, f * fold * k:(f + 1) * fold * k]
        folds.append(reference.metrics(*[r.tolist() for r in argsort_ranks(block, k)]))
    expected = {key: sum(fm[key] for fm in folds) / 5 for key in KEYS}
    assert_metrics_equal(coco_1k_metrics(sims, k, fold_size=fold), expected)
    # the folds really differ from the whole matrix (5K protocol): restricting the gallery raises recall
    assert coco_1k_metrics(sims, k, fold_size=fold)["rsum"] > retrieval_metrics(sims, k)["rsum"]


def test_bad_input_is_explained():
    with pytest.raises(KitError, match="captions_per_image=5"):
        retrieval_metrics(np.zeros((3, 10)))
    with pytest.raises(KitError, match="2-D"):
        retrieval_metrics(np.zeros(10))
    bad = np.zeros((2, 10))
    bad[1, 3] = np.inf
    with pytest.raises(KitError, match="NaN or inf"):
        retrieval_metrics(bad)
    with pytest.raises(KitError, match="fold_size=1000"):
        coco_1k_metrics(np.zeros((10, 50)))

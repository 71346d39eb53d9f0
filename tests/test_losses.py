"""dbl_kit.losses against an independent reference: the DBL formulas written as plain float64 Python loops.

The reference below is written from the paper's formulas (one scalar at a time, the margin adaptation rules
with the exp form of the soft rule), not from the vectorized implementation.
"""
import math
import random

import pytest
import torch

from dbl_kit.config import make_config
from dbl_kit.core import KitError
from dbl_kit.losses import BoostLoss, TripletLoss, boost_loss, make_transfer, triplet_loss

pytestmark = pytest.mark.numeric     # every value here is checked against a float64 reference

KINDS = ("rel_max", "rel_sum", "abs_max", "abs_sum")
ADAPTATIONS = ("none", "hard", "soft")


# ---------------------------------------------------------------- reference (loops over Python floats)
def hinge(x):
    return x if x > 0 else 0.0


def margin_above(r, e, mu, adaptation):
    "Margin for an anchor value r bounded above by e."
    if adaptation == "none":
        return mu
    if adaptation == "hard":
        return mu if r <= e - mu else max(e - r, 0.0)
    if mu == 0:
        return 0.0                                   # limit of the soft rule as mu -> 0
    z = (2.0 / mu) * (r - e)
    return (2.0 * mu / (1.0 + math.exp(z)) - mu) if z < 700 else -mu


def margin_below(r, e, mu, adaptation):
    "Margin for an anchor value r bounded below by -e."
    if adaptation == "none":
        return mu
    if adaptation == "hard":
        return mu if r >= mu - e else max(e + r, 0.0)
    if mu == 0:
        return 0.0
    z = -(2.0 / mu) * (r + e)
    return (2.0 * mu / (1.0 + math.exp(z)) - mu) if z < 700 else -mu


def ref_boost(T, A, kind, margin=0.2, beta=1.0, gamma=0.5, adaptation="none"):
    n = len(T)
    m = margin * beta
    total = 0.0
    if kind in ("rel_max", "rel_sum"):
        for i in range(n):                                        # image i, captions j != i
            terms = []
            for j in range(n):
                if j == i:
                    continue
                r = A[i][i] - A[i][j]
                terms.append(hinge(margin_above(r, 2.0, m, adaptation) + r - (T[i][i] - T[i][j])))
            total += (max(terms) if terms else 0.0) if kind == "rel_max" else sum(terms)
        for j in range(n):                                        # caption j, images i != j
            terms = []
            for i in range(n):
                if i == j:
                    continue
                r = A[j][j] - A[i][j]
                terms.append(hinge(margin_above(r, 2.0, m, adaptation) + r - (T[j][j] - T[i][j])))
            total += (max(terms) if terms else 0.0) if kind == "rel_max" else sum(terms)
        return total
    m_p, m_n = gamma * m, (1.0 - gamma) * m
    for i in range(n):
        total += 2.0 * hinge(margin_above(A[i][i], 1.0, m_p, adaptation) + A[i][i] - T[i][i])

    def neg(i, j):
        return hinge(margin_below(A[i][j], 1.0, m_n, adaptation) + T[i][j] - A[i][j])

    if kind == "abs_sum":
        for i in range(n):
            for j in range(n):
                if i != j:
                    total += 2.0 * neg(i, j)
        return total
    for i in range(n):
        total += max([neg(i, j) for j in range(n) if j != i], default=0.0)
    for j in range(n):
        total += max([neg(i, j) for i in range(n) if i != j], default=0.0)
    return total


def ref_triplet(S, margin=0.2, max_violation=True):
    n = len(S)
    total = 0.0
    for i in range(n):
        terms = [hinge(margin + S[i][j] - S[i][i]) for j in range(n) if j != i]
        total += (max(terms, default=0.0) if max_violation else sum(terms))
    for j in range(n):
        terms = [hinge(margin + S[i][j] - S[j][j]) for i in range(n) if i != j]
        total += (max(terms, default=0.0) if max_violation else sum(terms))
    return total


def random_pair(n, seed):
    """Target and anchor matrices in [-1, 1]; the anchor's positives are pushed near 1 for some seeds so that the
    adapted (hard/soft) branches of every margin are exercised."""
    rng = random.Random(seed)
    T = [[rng.uniform(-1, 1) for _ in range(n)] for _ in range(n)]
    A = [[rng.uniform(-1, 1) for _ in range(n)] for _ in range(n)]
    if seed % 2:
        for i in range(n):
            A[i][i] = rng.uniform(0.85, 1.0)
            T[i][i] = rng.uniform(0.3, 1.0)
    return T, A


def t64(M):
    return torch.tensor(M, dtype=torch.float64)


# ---------------------------------------------------------------- boost_loss
SETTINGS = [dict(margin=0.2, beta=1.0, gamma=0.5), dict(margin=0.3, beta=0.7, gamma=0.25),
            dict(margin=0.2, beta=1.5, gamma=1.0)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("adaptation", ADAPTATIONS)
def test_boost_matches_loop_for_every_size(kind, adaptation):
    for n in range(1, 33):
        for s, setting in enumerate(SETTINGS):
            T, A = random_pair(n, seed=1000 * s + n)
            expected = ref_boost(T, A, kind, adaptation=adaptation, **setting)
            got = boost_loss(t64(T), t64(A), kind, adaptation=adaptation, **setting).item()
            assert got == pytest.approx(expected, abs=1e-6), (n, setting)


def test_adaptations_are_exercised_by_the_random_cases():
    "The reference cases reach the adapted branch: hard and soft differ from none somewhere, for every kind."
    for kind in KINDS:
        diffs = {a: 0.0 for a in ("hard", "soft")}
        for n in range(2, 33):
            T, A = random_pair(n, seed=2 * n + 1)
            base = ref_boost(T, A, kind)
            for a in diffs:
                diffs[a] = max(diffs[a], abs(ref_boost(T, A, kind, adaptation=a) - base))
        assert diffs["hard"] > 1e-3 and diffs["soft"] > 1e-3, (kind, diffs)


def test_boost_float32_close_to_reference():
    T, A = random_pair(16, seed=7)
    for kind in KINDS:
        for adaptation in ADAPTATIONS:
            got = boost_loss(torch.tensor(T), torch.tensor(A), kind, adaptation=adaptation).item()
            assert got == pytest.approx(ref_boost(T, A, kind, adaptation=adaptation), abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("adaptation", ADAPTATIONS)
def test_no_gradient_reaches_the_anchor(kind, adaptation):
    T, A = random_pair(8, seed=3)
    weight = torch.ones(1, dtype=torch.float64, requires_grad=True)      # stands for the anchor's parameters
    anchor = t64(A) * weight
    target = t64(T).requires_grad_()
    boost_loss(target, anchor, kind, adaptation=adaptation).backward()
    assert weight.grad is None
    assert target.grad is not None and target.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_target_gradient_is_the_derivative(kind):
    T, A = random_pair(6, seed=11)
    anchor = t64(A)
    assert torch.autograd.gradcheck(lambda t: boost_loss(t, anchor, kind, adaptation="soft"),
                                    (t64(T).requires_grad_(),))


def test_one_pair_has_no_negative_terms():
    T, A = [[0.4]], [[0.7]]
    for adaptation in ADAPTATIONS:
        assert boost_loss(t64(T), t64(A), "rel_max", adaptation=adaptation).item() == 0
        assert boost_loss(t64(T), t64(A), "rel_sum", adaptation=adaptation).item() == 0
        positive_only = 2 * hinge(margin_above(0.7, 1.0, 0.1, adaptation) + 0.7 - 0.4)
        for kind in ("abs_max", "abs_sum"):
            assert boost_loss(t64(T), t64(A), kind, adaptation=adaptation).item() == pytest.approx(positive_only)
    assert triplet_loss(t64(T)).item() == 0 and triplet_loss(t64(T), max_violation=False).item() == 0


def test_boost_rejects_bad_input():
    T, A = random_pair(3, seed=1)
    with pytest.raises(KitError, match="kind='relmax'"):
        boost_loss(t64(T), t64(A), "relmax")
    with pytest.raises(KitError, match="adaptation='medium'"):
        boost_loss(t64(T), t64(A), adaptation="medium")
    with pytest.raises(KitError, match="differ in size"):
        boost_loss(t64(T), t64(A)[:2, :2])
    with pytest.raises(KitError, match="square"):
        boost_loss(t64(T)[:2], t64(A)[:2])


# ---------------------------------------------------------------- triplet_loss
@pytest.mark.parametrize("max_violation", [True, False])
def test_triplet_matches_loop_for_every_size(max_violation):
    for n in range(1, 33):
        S, _ = random_pair(n, seed=n)
        for margin in (0.0, 0.2, 0.5):
            got = triplet_loss(t64(S), margin, max_violation).item()
            assert got == pytest.approx(ref_triplet(S, margin, max_violation), abs=1e-6), (n, margin)


def test_triplet_gradient_and_module():
    S, _ = random_pair(5, seed=2)
    sims = t64(S).requires_grad_()
    TripletLoss(0.2)(sims).backward()
    assert sims.grad.abs().sum() > 0
    assert TripletLoss(0.2, reduction="mean")(t64(S)).item() == pytest.approx(ref_triplet(S) / 5)


# ---------------------------------------------------------------- modules, make_transfer (kd and the other cooperative transfers: test_transfers.py)
def test_make_transfer_passes_the_settings():
    T, A = random_pair(9, seed=5)
    for kind in KINDS:
        for adaptation in ADAPTATIONS:
            cfg = make_config(transfer=kind, margin=0.3, beta=0.5, gamma=0.3, adaptation=adaptation)
            loss = make_transfer(cfg)
            assert isinstance(loss, BoostLoss)
            expected = ref_boost(T, A, kind, margin=0.3, beta=0.5, gamma=0.3, adaptation=adaptation)
            assert loss(t64(T), t64(A)).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(KitError, match="Unknown transfer 'rkdd'; known transfers: 'rel_max'"):
        make_transfer({"transfer": "rkdd"})

"""dbl_kit.transfers against an independent reference: each cooperative loss written from its formula as plain
float64 Python loops over one query (row or column) at a time, with the reference code's reductions.

Values must agree within 1e-6 (relative), the target's gradient (autograd of the kit's loss) within 1e-4 of central
finite differences of the loop reference, on random batches of several sizes including n = 2.
"""
import math

import numpy as np
import pytest
import torch

from dbl_kit.core import TRANSFERS, KitError
from dbl_kit.losses import make_transfer
from dbl_kit.transfers import (BoostproLoss, CMPMLoss, DarkRankLoss, DINOLoss, DINOppLoss, KDLoss, RKDLoss, SPLoss,
                               boostpro_loss, cmpm_loss, darkrank_loss, dino_loss, dinopp_loss, kd_loss, rkd_loss,
                               sp_loss)

pytestmark = pytest.mark.numeric     # every value here is checked against a float64 reference

S10 = 10.0          # softmax scale of the reference (= 1/tau, tau = 0.1)
EPS = 1e-8


# ---------------------------------------------------------------- reference: loops over Python floats
def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    z = sum(e)
    return [v / z for v in e]


def log_softmax(xs):
    m = max(xs)
    lse = m + math.log(sum(math.exp(x - m) for x in xs))
    return [x - lse for x in xs]


def queries(M):
    "The rows of M (image queries), then its columns (caption queries), as lists of floats."
    n = len(M)
    return [[M[i][j] for j in range(n)] for i in range(n)] + [[M[i][j] for i in range(n)] for j in range(n)]


def per_query_mean(T, A, one):
    "sum over the 2n queries of one(t_query, a_query, position of the positive), divided by n."
    n = len(T)
    pos = list(range(n)) + list(range(n))
    return sum(one(t, a, k) for t, a, k in zip(queries(T), queries(A), pos)) / n


def ref_kd(T, A):
    def one(t, a, _):
        p, lp, lq = softmax([S10 * x for x in a]), log_softmax([S10 * x for x in a]), log_softmax([S10 * x for x in t])
        return sum(p[k] * (lp[k] - lq[k]) for k in range(len(t)))
    return per_query_mean(T, A, one)


def ref_dino(T, A):
    def one(t, a, _):
        p, lq = softmax([S10 * x for x in a]), log_softmax([S10 * x for x in t])
        return -sum(p[k] * lq[k] for k in range(len(t)))
    return per_query_mean(T, A, one)


def ref_dinopp(T, A):
    def one(t, a, _):
        q, p = softmax([S10 * x for x in t]), softmax([S10 * x for x in a])
        return sum(q[k] * math.log(EPS + q[k] / (p[k] + EPS)) for k in range(len(t)))
    return per_query_mean(T, A, one)


def ref_boostpro(T, A):
    def one(t, a, pos):
        return -log_softmax([S10 * (x - y) for x, y in zip(t, a)])[pos]
    return per_query_mean(T, A, one)


def ref_rkd(T, A):
    n = len(T)
    total = 0.0
    for i in range(n):
        for j in range(n):
            d = abs(T[i][j] - A[i][j])
            total += 0.5 * d * d if d < 1 else d - 0.5
    return 10.0 * total / (n * n)


def l2n(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / max(norm, 1e-12) for x in v]


def ref_sp(T, A):
    "Rows l2-normalised; columns normalised from the row-normalised matrices (the reference's order)."
    n = len(T)
    Tr, Ar = [l2n(row) for row in T], [l2n(row) for row in A]
    rows = sum(sum((Ar[i][j] - Tr[i][j]) ** 2 for j in range(n)) for i in range(n)) / n
    Tc = [l2n([Tr[i][j] for i in range(n)]) for j in range(n)]
    Ac = [l2n([Ar[i][j] for i in range(n)]) for j in range(n)]
    cols = sum(sum((Ac[j][i] - Tc[j][i]) ** 2 for i in range(n)) for j in range(n)) / n
    return 10.0 * (rows + cols)


def ref_darkrank(T, A, alpha=3.0, beta=3, list_len=4):
    def one(t, a, _):
        g_t, g_a = [-alpha * x ** beta for x in t], [-alpha * x ** beta for x in a]
        order = sorted(range(len(a)), key=lambda k: -g_a[k])[1:list_len + 1]   # stable: ties by index
        o = [g_t[k] for k in order]
        nll = 0.0
        for k in range(len(o)):
            m = max(o[k:])
            nll -= o[k] - (m + math.log(sum(math.exp(x - m) for x in o[k:])))
        return nll
    return per_query_mean(T, A, one)


def ref_cmpm(S, ids):
    n = len(S)
    def one(s, _unused, i):
        q = softmax([S10 * x for x in s])
        same = [1.0 if ids[i] == ids[j] else 0.0 for j in range(n)]
        p = [v / sum(same) for v in same]
        return sum(q[j] * math.log(EPS + q[j] / (p[j] + EPS)) for j in range(n))
    return per_query_mean(S, S, one)


KIT = {"kd": kd_loss, "dml": kd_loss, "dino": dino_loss, "dinopp": dinopp_loss, "boostpro": boostpro_loss,
       "rkd": rkd_loss, "sp": sp_loss, "darkrank": darkrank_loss}
REF = {"kd": ref_kd, "dml": ref_kd, "dino": ref_dino, "dinopp": ref_dinopp, "boostpro": ref_boostpro,
       "rkd": ref_rkd, "sp": ref_sp, "darkrank": ref_darkrank}
NAMES = tuple(KIT)
SIZES = (2, 3, 5, 7)


# ---------------------------------------------------------------- helpers
def batch(n, seed, low=-1.0, high=1.0):
    "A target and an anchor [n, n] in float64, cosine-like values in [low, high]."
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (n, n)), rng.uniform(low, high, (n, n))


def finite_diff(f, T, h=1e-6):
    "Central differences of the scalar f(T) for each element of T (lists of floats)."
    n = len(T)
    G = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            up = [row[:] for row in T]; up[i][j] += h
            down = [row[:] for row in T]; down[i][j] -= h
            G[i, j] = (f(up) - f(down)) / (2 * h)
    return G


def kit_value_and_grad(name, T, A):
    t = torch.tensor(T, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(A, dtype=torch.float64, requires_grad=True)
    loss = make_transfer({"transfer": name})(t, a)
    loss.backward()
    assert a.grad is None, f"{name}: the anchor received a gradient"
    return float(loss.detach()), t.grad.numpy()


# ---------------------------------------------------------------- values and gradients
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", SIZES)
def test_value_matches_loop_reference(name, n):
    for seed in range(3):
        T, A = batch(n, 100 * n + seed)
        value, _ = kit_value_and_grad(name, T, A)
        ref = REF[name](T.tolist(), A.tolist())
        assert value == pytest.approx(ref, rel=1e-6, abs=1e-12), (name, n, seed)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", SIZES)
def test_gradient_matches_finite_differences(name, n):
    T, A = batch(n, 7 * n + 1)
    _, grad = kit_value_and_grad(name, T, A)
    A_list = A.tolist()
    fd = finite_diff(lambda M: REF[name](M, A_list), T.tolist())
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("n", SIZES)
def test_rkd_huber_branch(n):
    "Differences beyond 1 exercise the linear branch of the smooth L1."
    T, A = batch(n, 3 * n, low=-3, high=3)
    value, grad = kit_value_and_grad("rkd", T, A)
    assert value == pytest.approx(ref_rkd(T.tolist(), A.tolist()), rel=1e-6)
    fd = finite_diff(lambda M: ref_rkd(M, A.tolist()), T.tolist())
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", (2, 4, 6))
def test_darkrank_order_over_ties(n):
    "An anchor with tied rows: the kit breaks ties by index, like the stable loop reference."
    T, _ = batch(n, 11)
    A = np.round(batch(n, 12)[1], 1)
    A[0, :] = 0.3
    assert float(darkrank_loss(torch.tensor(T), torch.tensor(A))) == pytest.approx(
        ref_darkrank(T.tolist(), A.tolist()), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fill", ["equal", "ones", "minus_ones", "zeros", "identity_vs_flat", "n2"])
def test_gradients_finite_on_extreme_inputs(name, fill):
    n = 2 if fill == "n2" else 5
    T = {"equal": np.full((n, n), 0.37), "ones": np.ones((n, n)), "minus_ones": -np.ones((n, n)),
         "zeros": np.zeros((n, n)), "identity_vs_flat": np.eye(n), "n2": np.array([[1.0, -1.0], [-1.0, 1.0]])}[fill]
    A = np.ones((n, n)) if fill == "identity_vs_flat" else T.copy()
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor(T, dtype=dtype, requires_grad=True)
        a = torch.tensor(A, dtype=dtype, requires_grad=True)
        loss = make_transfer({"transfer": name})(t, a)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(t.grad).all(), (name, fill, dtype)
        assert a.grad is None
        if dtype is torch.float64:
            assert float(loss.detach()) == pytest.approx(REF[name](T.tolist(), A.tolist()), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_large_scores_stay_finite(name):
    "Far outside the cosine range (un-normalised embeddings): softmaxes saturate, losses and gradients stay finite."
    T, A = batch(6, 5, low=-30, high=30)
    t = torch.tensor(T, dtype=torch.float32, requires_grad=True)
    loss = make_transfer({"transfer": name})(t, torch.tensor(A, dtype=torch.float32))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(t.grad).all()


def test_bf16_inputs_are_promoted():
    T, A = batch(4, 9)
    t, a = torch.tensor(T, dtype=torch.bfloat16), torch.tensor(A, dtype=torch.bfloat16)
    for name in NAMES:
        loss = make_transfer({"transfer": name})(t, a)
        assert loss.dtype == torch.float32, name


# ---------------------------------------------------------------- kd equals the reference's DMLLoss
def test_kd_equals_reference_dml_value():
    """kd equals the reference's DMLLoss (OSS): scale 10, `batchmean` per direction, rows plus columns.

    Checked three ways: (1) a case computed by hand from the formula: n = 2, tau = 0.1, anchor I, target 0.
    Every target distribution is (1/2, 1/2); every anchor row/column is softmax(10, 0) = (p, 1 - p) with
    p = 1/(1 + e^-10) = 0.9999546; KL(p || uniform) = p ln 2p + (1 - p) ln 2(1 - p) = 0.6926478; four queries
    summed then divided by n = 2 per the batchmean reduction: 2 x 0.6926478 = 1.3852956.
    (2) the loop reference above on random batches (test_value_matches_loop_reference).
    (3) the reference's own composition of PyTorch primitives, rewritten here: nn.KLDivLoss(reduction='batchmean')
    of log_softmax(10 T) against softmax(10 A), for the rows and for the transposes, added.
    """
    p = 1 / (1 + math.exp(-10))
    hand = 2 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)))
    assert hand == pytest.approx(1.3852956, abs=1e-7)
    assert float(kd_loss(torch.zeros(2, 2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))) == pytest.approx(hand, rel=1e-9)
    kl = torch.nn.KLDivLoss(reduction="batchmean")
    for n in (2, 5, 16):
        T, A = (torch.tensor(m) for m in batch(n, n))
        ref = (kl(torch.log_softmax(10 * T, 1), torch.softmax(10 * A, 1))
               + kl(torch.log_softmax(10 * T.t(), 1), torch.softmax(10 * A.t(), 1)))
        assert float(kd_loss(T, A)) == pytest.approx(float(ref), rel=1e-9)
        assert float(KDLoss(reduction="sum")(T, A)) == pytest.approx(n * float(ref), rel=1e-9)


def test_boostpro_is_kl_from_one_hot():
    "boostpro = nn.KLDivLoss(batchmean) of log_softmax(10 (T - A)) against the identity, rows plus columns."
    kl = torch.nn.KLDivLoss(reduction="batchmean")
    T, A = (torch.tensor(m) for m in batch(6, 2))
    eye = torch.eye(6, dtype=torch.float64)
    D = 10 * (T - A)
    ref = kl(torch.log_softmax(D, 1), eye) + kl(torch.log_softmax(D.t(), 1), eye)
    assert float(boostpro_loss(T, A)) == pytest.approx(float(ref), rel=1e-9)


def test_sp_column_term_uses_row_normalised_matrix():
    "Normalising the original columns instead would give a different value whenever row norms differ."
    T, A = batch(4, 21)
    T[0] *= 5                                                  # unequal row norms
    def cols_of_original(T, A):
        n = len(T)
        Tr, Ar = [l2n(r) for r in T], [l2n(r) for r in A]
        rows = sum(sum((Ar[i][j] - Tr[i][j]) ** 2 for j in range(n)) for i in range(n)) / n
        Tc = [l2n([T[i][j] for i in range(n)]) for j in range(n)]
        Ac = [l2n([A[i][j] for i in range(n)]) for j in range(n)]
        return 10 * (rows + sum(sum((Ac[j][i] - Tc[j][i]) ** 2 for i in range(n)) for j in range(n)) / n)
    kit = float(sp_loss(torch.tensor(T), torch.tensor(A)))
    assert kit == pytest.approx(ref_sp(T.tolist(), A.tolist()), rel=1e-9)
    assert abs(kit - cols_of_original(T.tolist(), A.tolist())) > 1e-3


def test_darkrank_ranks_least_similar_items():
    "Documented reference behaviour: the list is the anchor's 2nd..5th least similar items, not its nearest ones."
    n = 8
    A = torch.linspace(-0.9, 0.9, n).repeat(n, 1)              # every row: item k has similarity increasing in k
    T = torch.full((n, n), 0.5, dtype=torch.float64, requires_grad=True)   # equal target scores, g'(0.5) != 0
    darkrank_loss(T, A).backward()
    touched = (T.grad.abs() > 0)
    # rows: only items 1..4 (the 2nd..5th least similar) get a gradient
    expected = torch.zeros(n, n, dtype=torch.bool)
    expected[:, 1:5] = True
    # columns: in column j all items (images) have the same anchor value, so ties are broken by index: images 1..4
    expected[1:5, :] = True
    assert torch.equal(touched, expected)


# ---------------------------------------------------------------- cmpm (a base loss)
@pytest.mark.parametrize("n", (2, 3, 6))
def test_cmpm_matches_loop_reference(n):
    S, _ = batch(n, 40 + n)
    rng = np.random.default_rng(n)
    for ids in (list(range(n)), rng.integers(0, max(1, n // 2), n).tolist()):
        s = torch.tensor(S, requires_grad=True)
        loss = cmpm_loss(s, ids)
        loss.backward()
        assert float(loss.detach()) == pytest.approx(ref_cmpm(S.tolist(), ids), rel=1e-6)
        fd = finite_diff(lambda M: ref_cmpm(M, ids), S.tolist())
        np.testing.assert_allclose(s.grad.numpy(), fd, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(fd).max()))
    assert float(CMPMLoss()(torch.tensor(S))) == pytest.approx(ref_cmpm(S.tolist(), list(range(n))), rel=1e-6)


def test_cmpm_is_not_a_transfer():
    assert "cmpm" not in TRANSFERS


# ---------------------------------------------------------------- registry, configuration, errors
def test_registered_names_and_config():
    for name, cls in (("kd", KDLoss), ("dml", KDLoss), ("dino", DINOLoss), ("dinopp", DINOppLoss),
                      ("boostpro", BoostproLoss), ("rkd", RKDLoss), ("sp", SPLoss), ("darkrank", DarkRankLoss)):
        assert TRANSFERS[name] is cls
        assert isinstance(make_transfer({"transfer": name}), cls)
        assert TRANSFERS.help(name)
    for name in ("kd", "dino", "dinopp", "boostpro"):
        assert make_transfer({"transfer": name}).tau == 0.1
        assert make_transfer({"transfer": name, "tau": 0.5}).tau == 0.5
    # DarkRank's alpha/beta are its own: the config's alpha (transfer weight) and beta (margin factor) do not reach it
    dr = make_transfer({"transfer": "darkrank", "alpha": 0.25, "beta": 2.0})
    assert (dr.alpha, dr.beta, dr.list_len) == (3.0, 3, 4)


def test_tau_changes_the_scale():
    T, A = batch(4, 8)
    t, a = torch.tensor(T), torch.tensor(A)
    assert float(kd_loss(t, a, tau=0.05)) == pytest.approx(float(kd_loss(2 * t, 2 * a, tau=0.1)), rel=1e-9)


def test_errors():
    with pytest.raises(KitError, match="tau=0"):
        DINOLoss(tau=0)
    with pytest.raises(KitError, match="reduction='none'"):
        SPLoss(reduction="none")
    with pytest.raises(KitError, match="differ in size"):
        dino_loss(torch.zeros(3, 3), torch.zeros(4, 4))
    with pytest.raises(KitError, match="square"):
        boostpro_loss(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(KitError, match="list_len"):
        DarkRankLoss(list_len=0)


@pytest.mark.parametrize("name", NAMES)
def test_sum_reduction_is_n_times_mean(name):
    T, A = (torch.tensor(m) for m in batch(5, 31))
    mean = float(make_transfer({"transfer": name})(T, A))
    cls = TRANSFERS[name]
    total = float(cls(reduction="sum")(T, A))
    assert total == pytest.approx(mean * (25 if name == "rkd" else 5), rel=1e-9)

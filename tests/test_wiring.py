"""How the scenarios wire the training loop, checked step by step against the baseline.

Each test builds the models from the same seeds, feeds the same batches, and compares parameters exactly
(`torch.equal`): a zero transfer weight must leave a scenario's learning identical to the baseline's, and a
momentum of 1 must freeze the moving-average anchor. Dropout is off (`dropout=0`) where two scenarios would
otherwise draw different dropout masks from the shared random stream: the comparison is about the wiring, not
about the random stream.
"""
import copy

import dbl_kit

import torch
from fastcore.test import test_eq

from dbl_kit.scenarios import Baseline, Momentum, Offline, Online, encode_split
from dbl_kit.trainer import train_step

SMALL = dict(embed_size=32, word_dim=32, batch_size=32, threads=1, progress=False)


def params_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def batches(ctx, n=3):
    return [b for _, b in zip(range(n), ctx.loader(0))]


def test_offline_alpha0_step_is_a_baseline_step(ctx_factory):
    ctx = ctx_factory(scenario="offline", alpha=0.0, **SMALL)
    anchor = ctx.new_model(0)
    target = ctx.new_model(1)
    cache = encode_split(anchor, ctx.splits["train"], ctx.vocab, ctx.device, 256)
    for cached in (cache, None):
        offline = Offline(ctx.cfg, copy.deepcopy(target).train(), copy.deepcopy(anchor), cached)
        base = Baseline(ctx.cfg, copy.deepcopy(target).train())
        for i, b in enumerate(batches(ctx)):
            torch.manual_seed(i); t_off = train_step(offline, b, ctx, i, 3)
            torch.manual_seed(i); t_base = train_step(base, b, ctx, i, 3)
            test_eq(t_off["target"]["total"].item(), t_base["baseline"]["total"].item())
            assert t_off["target"]["transfer"].item() > 0     # the transfer was computed, and weighed 0
        assert params_equal(offline.branch("target").model, base.branch("baseline").model)
        assert not params_equal(offline.branch("target").model, target)   # and it did learn


def test_momentum_one_leaves_the_anchor_unchanged(ctx_factory):
    ctx = ctx_factory(scenario="momentum", momentum=1.0, **SMALL)
    scenario = Momentum(ctx.cfg, ctx.new_model(0))
    before = copy.deepcopy(scenario.branch("anchor").model)
    for i, b in enumerate(batches(ctx)): train_step(scenario, b, ctx, i, 3)
    assert params_equal(scenario.branch("anchor").model, before)
    assert not params_equal(scenario.branch("target").model, before)


def test_momentum_below_one_moves_the_anchor(ctx_factory):
    "The converse, so that the test above could fail: momentum 0.5 moves the anchor halfway at step 0."
    ctx = ctx_factory(scenario="momentum", momentum=0.5, **SMALL)
    scenario = Momentum(ctx.cfg, ctx.new_model(0))
    before = copy.deepcopy(scenario.branch("anchor").model)
    train_step(scenario, batches(ctx, 1)[0], ctx, 0, 10)
    target = scenario.branch("target").model
    for pa, p0, pt in zip(scenario.branch("anchor").model.parameters(), before.parameters(), target.parameters()):
        assert torch.allclose(pa, 0.5 * p0 + 0.5 * pt, atol=1e-6)


def test_online_alpha0_trains_each_branch_as_a_baseline(ctx_factory):
    ctx = ctx_factory(scenario="online", alpha=0.0, n_branches=3, dropout=0.0, region_drop=0.0, **SMALL)
    for direction in ("forward", "mutual"):
        cfg = ctx.cfg.replace(direction=direction)
        models = [ctx.new_model(k) for k in range(3)]
        online = Online(cfg, [copy.deepcopy(m) for m in models])
        alone = [Baseline(cfg, copy.deepcopy(m)) for m in models]
        data = batches(ctx)
        for i, b in enumerate(data):
            train_step(online, b, ctx, i, len(data))
            for base in alone: train_step(base, b, ctx, i, len(data))
        for k, base in enumerate(alone):
            assert params_equal(online.branch(f"branch{k}").model, base.branch("baseline").model), (direction, k)
        assert not params_equal(online.branch("branch0").model, online.branch("branch1").model)


def test_cmpm_base_loss_adds_to_the_triplet(ctx_factory):
    "base_loss='triplet+cmpm': every branch's base term is the triplet loss plus CMPM with the batch's image ids."
    from dbl_kit.losses import triplet_loss
    from dbl_kit.transfers import cmpm_loss
    ctx = ctx_factory(base_loss="triplet+cmpm", **SMALL)
    scenario = Baseline(ctx.cfg, ctx.new_model(0))
    b = batches(ctx, 1)[0]
    sims = scenario.similarities(b)
    T = sims["baseline"]
    got = scenario.losses(sims, b)["baseline"]["base"]
    want = triplet_loss(T, margin=ctx.cfg.margin) + cmpm_loss(T, b["image_ids"])
    test_eq(torch.allclose(got, want), True)
    plain = Baseline(ctx.cfg.replace(base_loss="triplet"), scenario.branch("baseline").model)
    test_eq(torch.allclose(plain.losses(sims, b)["baseline"]["base"], triplet_loss(T, margin=ctx.cfg.margin)), True)


def test_anchor_cache_plan_sizes_and_budget(ctx_factory):
    "The cache size formula, computed here from the data by hand: E * (images + captions) or E * (images * R + captions * L)."
    from dbl_kit.scenarios import anchor_cache_plan
    ctx = ctx_factory(model="vse", embed_size=32, word_dim=32)
    train = ctx.splits["train"]
    plan = anchor_cache_plan(ctx)
    assert plan == {"bytes": 4 * 32 * (train.n_images + train.n_captions), "budget_mb": 8192.0, "cached": True, "dtype": "float32"}
    ctx = ctx_factory(model="scan_t2i", embed_size=32, word_dim=32, anchor_cache_mb=1.0)
    longest = max(len(ctx.vocab.encode_text(c)) for c in train.captions)      # <start> words <end>
    regions = train.images.shape[1]
    plan = anchor_cache_plan(ctx)
    assert plan["bytes"] == 4 * 32 * (train.n_images * regions + train.n_captions * longest)
    assert plan["bytes"] > 2**20 and not plan["cached"] and plan["dtype"] is None
    # a run on the first 768 captions caches only those, rounded up to whole images: 154 images, 770 captions
    ctx = ctx_factory(model="vse", embed_size=32, word_dim=32, max_train_captions=768)
    test_eq(anchor_cache_plan(ctx)["bytes"], 4 * 32 * (154 + 154 * 5))


def test_offline_without_cache_trains_the_same(small):
    "anchor_cache_mb=0 makes the anchor encode every batch (no cache): the run's numbers do not change."
    anchor = dbl_kit.train(**small)
    runs = [dbl_kit.train(**{**small, "scenario": "offline", "anchor_ckpt": str(anchor.run_dir), "anchor_cache_mb": mb})
            for mb in (8192.0, 0.0)]
    configs = [dbl_kit.RunDir(r.run_dir).config["anchor_cache"]["cached"] for r in runs]
    assert configs == [True, False]
    assert runs[0].branches == runs[1].branches

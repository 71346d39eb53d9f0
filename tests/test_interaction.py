"""Interaction backbones (scan_t2i, scan_i2t, ave, sgr, saf): the block similarity engine against an independent
per-caption loop written the way the published code computes it (`similarity` of tests/reference.py: values and
gradients, ragged and padded captions, one block or many), the registry and configuration, a training step, the
cached offline anchor, and a run's round trip."""
import json

import numpy as np
import pytest
import torch

import dbl_kit
import dbl_kit.interaction   # registers the interaction backbones
from dbl_kit.core import MODELS
from dbl_kit.data import load_split, resolve_dataset
from dbl_kit.metrics import retrieval_metrics
from dbl_kit.models import TokenSet, build_model, rebuild_model
from dbl_kit.rundir import RunDir
from dbl_kit.scenarios import Baseline, Offline, encode_split
from dbl_kit.trainer import train_step
from fastcore.test import test_close, test_eq
from reference import similarity as reference_similarity, unit

HEADS = ("scan_t2i", "scan_i2t", "ave", "sgr", "saf")


@pytest.fixture(scope="module")
def small_shapes(tmp_path_factory, shapes_data_path):
    "A precomp folder with the first images of each shapes split (train 300, dev 60, test 100): quick to train and evaluate."
    src, dst = resolve_dataset("shapes", shapes_data_path), tmp_path_factory.mktemp("small_shapes")
    for split, n in (("train", 300), ("dev", 60), ("test", 100)):
        np.save(dst / f"{split}_ims.npy", np.load(src / f"{split}_ims.npy", mmap_mode="r")[:n])
        lines = (src / f"{split}_caps.txt").read_text(encoding="utf-8").splitlines()
        (dst / f"{split}_caps.txt").write_text("\n".join(lines[:5 * n]) + "\n", encoding="utf-8")
    return str(dst)


# ---- inputs -------------------------------------------------------------------------------------------------------
R, E, D, N_IMG = 4, 16, 8, 5
LENGTHS = torch.tensor([6, 1, 3, 5, 2, 6, 4])


def make_model(name, **kw):
    torch.manual_seed(1)
    extra = {} if name.startswith("scan") else {"sim_dim": D, **({"n_regions": R} if name in ("sgr", "saf") else {})}
    return MODELS[name](vocab_size=10, feat_dim=8, embed_size=E, **{"dropout": 0.0, **extra, **kw}).train()


def make_inputs(pad=0, seed=0):
    "Unit region and word vectors; the padding behind each caption's last word holds junk (never zeros)."
    g = torch.Generator().manual_seed(seed)
    regions = unit(torch.randn(N_IMG, R, E, generator=g))
    words = unit(torch.randn(len(LENGTHS), int(LENGTHS.max()) + pad, E, generator=g))
    return regions, words


CASES = [(h, {}) for h in HEADS] + [("scan_t2i", {"agg": "lse"}), ("scan_i2t", {"agg": "lse"})]


@pytest.mark.numeric
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{h}-{kw.get('agg', 'avg')}" for h, kw in CASES])
@pytest.mark.parametrize("blocks", ["one", "many"])
def test_block_engine_matches_per_caption_loop(name, kw, blocks):
    model = make_model(name, **kw)
    if blocks == "many":   # about four pairs per block: many blocks, checkpointed with gradients
        model.sim_budget_mb = 4 * 4 * model.pair_floats(R, int(LENGTHS.max()), grad=True) / 2**20
    regions, words = make_inputs()
    weights = torch.randn(N_IMG, len(LENGTHS), generator=torch.Generator().manual_seed(3))
    results = []
    for fn in (model.similarity, lambda i, c: reference_similarity(model, i, c, shard=3)):
        model.zero_grad()
        r, w = regions.clone().requires_grad_(), words.clone().requires_grad_()
        S = fn(TokenSet(r, torch.full((N_IMG,), R)), TokenSet(w, LENGTHS))
        (S * weights).sum().backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results.append((S.detach(), r.grad, w.grad, grads))
    (S, gr, gw, gp), (S_ref, gr_ref, gw_ref, gp_ref) = results
    test_eq(S.shape, (N_IMG, len(LENGTHS)))
    test_close(S, S_ref, eps=1e-5)
    # Gradients have no fixed size: each tolerance is relative to the largest reference entry (float32 sums in
    # another order differ by a few units in the 7th digit, and the CPU's vector width decides the order).
    def rel(ref): return 1e-4 * float(ref.abs().max()) + 1e-7   # 1e-7: what this test counts as no gradient
    test_close(gr, gr_ref, eps=rel(gr_ref))
    test_close(gw, gw_ref, eps=rel(gw_ref))
    assert gw[1, 1:].abs().max() == 0                        # padding gets no gradient
    assert set(gp) >= set(gp_ref) - {k for k in gp_ref if gp_ref[k].abs().max() < 1e-7}
    for k in gp_ref: test_close(gp.get(k, torch.zeros_like(gp_ref[k])), gp_ref[k], eps=rel(gp_ref[k]))


@pytest.mark.numeric
@pytest.mark.parametrize("name", HEADS)
def test_padding_and_batching_never_change_a_score(name):
    model = make_model(name).eval()
    regions, words = make_inputs(pad=3)
    img = TokenSet(regions, torch.full((N_IMG,), R))
    with torch.no_grad():
        ref = reference_similarity(model, img, TokenSet(words, LENGTHS), shard=3)
        padded = model.similarity(img, TokenSet(words, LENGTHS))                          # 3 more junk words each
        trimmed = model.similarity(img, TokenSet(words[:, :int(LENGTHS.max())], LENGTHS))
        alone = torch.cat([model.similarity(img, TokenSet(words[j:j + 1, :int(LENGTHS[j])], LENGTHS[j:j + 1]))
                           for j in range(len(LENGTHS))], 1)
        model.sim_budget_mb = 2 * 4 * model.pair_floats(R, 9) / 2**20                     # two pairs per block
        tiny = model.similarity(img, TokenSet(words, LENGTHS))            # blocks in parallel on a CPU with threads
        model.cpu_parallel_blocks = False
        serial = model.similarity(img, TokenSet(words, LENGTHS))
    for other in (padded, trimmed, alone, tiny, serial): test_close(other, ref, eps=1e-5)


@pytest.mark.parametrize("name", ["sgr", "saf"])
def test_scores_without_gradients_are_deterministic_in_training_mode(name):
    "The trainer scores dev between epochs with the model in training mode under no_grad: the global vectors' dropout is off."
    model = make_model(name, dropout=0.5)
    regions, words = make_inputs()
    img, cap = TokenSet(regions, torch.full((N_IMG,), R)), TokenSet(words, LENGTHS)
    with torch.no_grad(): a, b = model.similarity(img, cap), model.similarity(img, cap)
    test_eq(a, b)
    assert not torch.equal(model.similarity(img, cap), model.similarity(img, cap))   # with gradients it is on


@pytest.mark.parametrize("name", HEADS)
def test_bf16_autocast_keeps_the_ranking(name):
    model = make_model(name).eval()
    regions, words = make_inputs(seed=4)
    img, cap = TokenSet(regions, torch.full((N_IMG,), R)), TokenSet(words, LENGTHS)
    with torch.no_grad():
        ref = model.similarity(img, cap)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.similarity(img, cap)
        half_cache = model.similarity(img.to(torch.bfloat16), cap.to(torch.bfloat16))    # a bf16 cache, float32 math
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert torch.corrcoef(torch.stack([low.flatten(), ref.flatten()]))[0, 1] > 0.98
    test_close(half_cache, ref, eps=5e-2)


def test_registry_config_round_trip():
    regions, tokens, lengths = torch.randn(3, R, 8), torch.randint(1, 10, (3, 5)), torch.tensor([5, 2, 3])
    for name in HEADS:
        assert name in MODELS and MODELS.help(name)
        cfg = dbl_kit.make_config(model=name, embed_size=E, word_dim=8, sim_dim=D, sgr_step=2, agg="lse", sim_budget_mb=64)
        model = build_model(cfg, vocab_size=10, feat_dim=8, n_regions=R).eval()
        test_eq(model.config["model"], name)
        test_eq(model.config["sim_budget_mb"], 64.0)
        if name.startswith("scan"):
            test_eq((model.config["agg"], model.config["lambda_softmax"]), ("lse", 9.0 if name == "scan_t2i" else 4.0))
        else:
            test_eq(model.config["sim_dim"], D)
        if name == "sgr": test_eq(len(model.steps), 2)
        again = rebuild_model(json.loads(json.dumps(model.config)))
        again.load_state_dict(model.state_dict())
        again.eval()
        test_eq(again.config, model.config)
        with torch.no_grad():
            test_close(again.similarity(*again(regions, tokens, lengths)), model.similarity(*model(regions, tokens, lengths)),
                       eps=1e-6)


@pytest.mark.parametrize("name", HEADS)
def test_one_training_step(name, ctx_factory, small_shapes):
    ctx = ctx_factory(model=name, dataset=small_shapes, embed_size=E, word_dim=8, sim_dim=D, batch_size=16, max_train_captions=64)
    scenario = Baseline(ctx.cfg, ctx.new_model(0))
    model = scenario.branch("baseline").model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    terms = train_step(scenario, next(iter(ctx.loader(0))), ctx, 0, 1)
    assert torch.isfinite(terms["baseline"]["total"])
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_offline_anchor_from_cache_matches_recomputed(ctx_factory, small_shapes):
    ctx = ctx_factory(model="ave", dataset=small_shapes, embed_size=E, word_dim=8, sim_dim=D, batch_size=16)
    anchor = ctx.new_model(0)
    cache = encode_split(anchor, ctx.splits["train"], ctx.vocab, ctx.device, 1024)
    assert isinstance(cache[0], TokenSet) and len(cache[0]) == ctx.splits["train"].n_images
    cached, recomputed = Offline(ctx.cfg, ctx.new_model(1), anchor, cache), Offline(ctx.cfg, ctx.new_model(1), anchor)
    batch = next(iter(ctx.loader(0)))
    test_close(cached.similarities(batch)["anchor"], recomputed.similarities(batch)["anchor"], eps=1e-5)
    assert torch.isfinite(train_step(cached, batch, ctx, 0, 1)["target"]["total"])


def test_train_then_load_reproduces_test_rsum(tmp_path, small_shapes):
    r = dbl_kit.train(model="ave", dataset=small_shapes, epochs=1, max_train_captions=512, embed_size=32, word_dim=32,
                      sim_dim=16, progress=False, runs_path=str(tmp_path), eval_batch_size=1024)
    reported = json.loads((r.run_dir / "metrics.json").read_text())["branches"][r.target]["rsum"]
    model, info = dbl_kit.load_model(r.run_dir)
    test_eq((info["model"]["model"], info["model"]["sim_dim"]), ("ave", 16))
    run = RunDir(r.run_dir)
    split = load_split(run.config["dataset_folder"], "test")
    img, cap = encode_split(model, split, run.vocab(), torch.device("cpu"), 1024)
    with torch.no_grad(): sims = model.similarity(img, cap)
    test_close(retrieval_metrics(sims, split.captions_per_image)["rsum"], reported, eps=1e-6)
    assert reported > 0

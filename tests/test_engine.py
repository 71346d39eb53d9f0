"""The block engine as a plain function (`block_similarity`): any head with a block scorer, no process-wide thread
setting and no state stored on the model during a forward; the `saf` gate's running statistics still take one update
per caption, in caption order, also when blocks are checkpointed and recomputed."""
import pytest
import torch
from torch import nn
from fastcore.test import test_close, test_eq

import dbl_kit.interaction as inter
from dbl_kit.core import MODELS
from dbl_kit.models import TokenSet, l2norm

R, E, D, N_IMG = 4, 16, 8, 5
LENGTHS = torch.tensor([6, 1, 3, 5, 2, 6, 4])
HEADS = ("scan_t2i", "scan_i2t", "ave", "sgr", "saf")


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    img = TokenSet(l2norm(torch.randn(N_IMG, R, E, generator=g)), torch.full((N_IMG,), R))
    return img, TokenSet(l2norm(torch.randn(len(LENGTHS), int(LENGTHS.max()), E, generator=g)), LENGTHS)


def model(name, **kw):
    torch.manual_seed(1)
    extra = {} if name.startswith("scan") else {"sim_dim": D, **({"n_regions": R} if name in ("sgr", "saf") else {})}
    return MODELS[name](vocab_size=10, feat_dim=8, embed_size=E, **{"dropout": 0.0, **extra, **kw})


class MeanDot(nn.Module):
    "A minimal head: the mean region against the mean real word, one block at a time."
    name, show_progress, progress_flops, all_images_per_block = "mean_dot", False, 1e30, False
    def __init__(self, mb): super().__init__(); self.w = nn.Parameter(torch.ones(())); self.mb = mb
    def block_mb(self, device, grad=False): return self.mb
    def pair_floats(self, R, L, grad=False): return 1024.0
    def pair_flops(self, R, L): return 1.0
    def image_terms(self, imgs): return {"mean": imgs.mean(1)}
    def caption_terms(self, caps, mask): return {"mean": caps.sum(1) / mask.sum(1, keepdim=True)}
    def score_block(self, imgs, caps, mask, it, ct): return self.w * it["mean"] @ ct["mean"].T


def test_any_head_with_a_block_scorer():
    img, cap = inputs()
    ref = img.features.mean(1) @ torch.stack([cap.features[j, :n].mean(0) for j, n in enumerate(LENGTHS.tolist())]).T
    for mb in (1.0, 4 * 1024 * 3 / 2**20):          # one block; three pairs per block (many blocks, captions reordered)
        head = MeanDot(mb)
        with torch.no_grad(): S, extra = inter.block_similarity(head, img, cap)
        test_close(S, ref, eps=1e-6); assert extra is None
        bi, blocks = inter.plan_blocks(head, N_IMG, sorted(LENGTHS.tolist()), R)
        test_eq(sum(c1 - c0 for c0, c1, _ in blocks), len(LENGTHS))
        S = inter.block_similarity(head, img, cap)[0]        # with gradients: checkpointed blocks when many
        test_close(S, ref, eps=1e-6); S.sum().backward(); assert head.w.grad is not None


@pytest.mark.parametrize("name", HEADS)
def test_no_thread_setting_and_no_state_during_a_forward(name, monkeypatch):
    m = model(name).train()
    m.sim_budget_mb = 2 * 4 * m.pair_floats(R, 9, grad=True) / 2**20          # many blocks, with and without gradients
    threads = torch.get_num_threads()
    def refuse(n): raise AssertionError("torch.set_num_threads inside a forward")
    monkeypatch.setattr(torch, "set_num_threads", refuse)
    seen, score = [], m.score_block
    def watched(*a): seen.append(torch.get_num_threads()); return score(*a)
    monkeypatch.setattr(m, "score_block", watched)
    img, cap = inputs()
    cap = TokenSet(cap.features.requires_grad_(), cap.lengths)     # scan heads score with no parameter of their own
    before = set(vars(m))
    for mode in ("train", "eval"):
        getattr(m, mode)()
        with torch.no_grad(): m.similarity(img, cap)
        m.similarity(img, cap).sum().backward()
    test_eq(set(vars(m)), before)
    assert seen and set(seen) == {threads}


def test_saf_gate_statistics_once_per_caption_with_checkpointed_blocks():
    img, cap = inputs(2)
    one, many = model("saf").train(), model("saf").train()
    many.sim_budget_mb = 4 * N_IMG * many.pair_floats(R, 6, grad=True) / 2**20     # one caption per block, recomputed
    bi, blocks = many.plan_blocks(N_IMG, sorted(LENGTHS.tolist()), R, grad=True)
    test_eq(bi, N_IMG); assert len(blocks) > 1
    for m in (one, many): m.similarity(img, cap).sum().backward()
    for k in ("running_mean", "running_var", "num_batches_tracked"):
        test_close(getattr(many.gate_norm, k).float(), getattr(one.gate_norm, k).float(), eps=1e-6)
    test_eq(int(one.gate_norm.num_batches_tracked), len(LENGTHS))

"""A new backbone is one definition plus one registry line: a toy model registered here trains with
`dbl_kit.train(model=...)` and reloads with `dbl_kit.load_model`, with no edit to the kit."""
import torch
from torch import nn
import torch.nn.functional as F
from fastcore.test import test_eq, test_fail

import dbl_kit
from dbl_kit import MODELS, SCENARIOS, TRANSFERS, KitError, make_config


class BagOfWords(nn.Module):
    "Mean of projected regions vs a bag of word embeddings, cosine similarity."
    def __init__(self, vocab_size, feat_dim, embed_size=16):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, feat_dim=feat_dim, embed_size=embed_size)
        self.img, self.txt = nn.Linear(feat_dim, embed_size), nn.EmbeddingBag(vocab_size, embed_size, padding_idx=0)
    def encode_images(self, regions): return F.normalize(self.img(regions.mean(1)), dim=-1)
    def encode_texts(self, tokens, lengths): return F.normalize(self.txt(tokens), dim=-1)
    def similarity(self, images, captions): return images @ captions.T


MODELS.register("toy_bow", help="a bag-of-words toy for the registry test")(BagOfWords)


def test_toy_backbone_trains_and_reloads(small):
    r = dbl_kit.train(model="toy_bow", **{**small, "embed_size": 24})
    model, info = dbl_kit.load_model(r.run_dir)
    assert isinstance(model, BagOfWords)
    test_eq(info["model"], {"model": "toy_bow", "vocab_size": model.config["vocab_size"], "feat_dim": 128, "embed_size": 24})
    # the reloaded target reproduces the run's test metrics
    from dbl_kit.data import load_split
    from dbl_kit.rundir import RunDir
    from dbl_kit.scenarios import encode_split
    run = RunDir(r.run_dir)
    split = load_split(run.config["dataset_folder"], "test")
    img, cap = encode_split(model, split, run.vocab(), torch.device("cpu"))
    test_eq(dbl_kit.retrieval_metrics(model.similarity(img, cap), 5)["rsum"], r.metrics["rsum"])


def test_toy_backbone_in_a_scenario(small):
    r = dbl_kit.train(model="toy_bow", scenario="offline", anchor_epochs=1, **small)
    test_eq(sorted(r.branches), ["anchor", "target"])


def test_unknown_names_list_the_known_ones():
    test_fail(lambda: make_config(model="toy_bwo"), contains="'toy_bow'")
    test_fail(lambda: MODELS["nope"], contains="known models: 'vse'")
    test_fail(lambda: SCENARIOS["offlin"], contains="'offline'")
    test_fail(lambda: TRANSFERS["rel"], contains="'rel_max'")
    assert "toy_bow" in dbl_kit.PARAMS["model"].text      # the help lists registered backbones


def test_no_case_on_registry_names_outside_the_registries():
    "The trainer, scenarios and bench branch on no model/scenario/transfer name."
    import re
    from pathlib import Path
    lib = Path(dbl_kit.__file__).parent
    hits = [f"{p.name}:{i}" for p in lib.glob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"cfg\.(model|scenario|transfer) ?==", line)]
    test_eq(hits, [])


from dbl_kit.scenarios import Baseline, Stage


@SCENARIOS.register("twice", help="a toy: two baseline stages in a row on one branch")
class Twice(Baseline):
    "The same branch trained for two stages (a scenario whose staging differs from every built-in one)."
    @classmethod
    def layout(cls, cfg): return ["solo"], "solo", None
    @classmethod
    def stages(cls, ctx):
        model = ctx.new_model(0)
        for k in range(2): yield Stage(f"part{k}", cls(ctx.cfg, model, name="solo"), 1, ctx.cfg.seed + k)


@TRANSFERS.register("l2_toy", help="a toy transfer: mean squared difference to the anchor")
class L2Toy(nn.Module):
    def __init__(self, cfg=None): super().__init__()
    def forward(self, target, anchor): return ((target - anchor.detach()) ** 2).mean()


def test_toy_scenario_and_transfer_train(small):
    r = dbl_kit.train(scenario="twice", **small)
    test_eq([h["stage"] for h in r.history], ["part0", "part1"])
    test_eq(list(r.branches), ["solo"])
    r = dbl_kit.train(scenario="offline", transfer="l2_toy", anchor_epochs=1, **small)
    assert all(h["loss"]["transfer"] > 0 for h in r.history if h["branch"] == "target")

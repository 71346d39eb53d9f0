"""Components own their settings: `PARAMS` is assembled from the registry lines (plus the trainer's own settings), a
new backbone's hyperparameter needs no edit elsewhere, published defaults are resolved by `Registry.published`, and
the library imports one way (config imports only core; the components never import config)."""
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from fastcore.test import test_eq, test_fail

import dbl_kit
from dbl_kit import MODELS, KitError, make_config
from dbl_kit.core import Param, number
from dbl_kit.models import build_model
from dbl_kit.scenarios import optimizer_choice


class Depthy(nn.Module):
    "A toy backbone with a hyperparameter of its own."
    def __init__(self, vocab_size, feat_dim, embed_size=16, depth=None):
        super().__init__()
        depth = MODELS.published("toy_depthy", {"depth": depth})["depth"]
        self.config = dict(vocab_size=vocab_size, feat_dim=feat_dim, embed_size=embed_size, depth=depth)
        self.layers = nn.Sequential(*[nn.Linear(feat_dim, feat_dim) for _ in range(depth)])


@pytest.fixture()
def toy_depthy():
    "The toy registered for one test, and removed after it: the registries are global, and other tests list them."
    MODELS.register("toy_depthy", help="a toy with its own `depth`", published={"depth": 2},
                    params={"depth": Param(None, number(int, 1, optional=True), "toy_depthy: layers; default: 2 (published)")})(Depthy)
    yield
    for table in (MODELS._entries, MODELS._help, MODELS._params, MODELS._published): table.pop("toy_depthy", None)


def test_a_new_hyperparameter_is_one_registry_line(toy_depthy):
    assert "depth" in dbl_kit.PARAMS
    cfg = make_config(model="toy_depthy", depth=3)
    test_eq(build_model(cfg, vocab_size=5, feat_dim=4).config["depth"], 3)
    test_eq(build_model(make_config(model="toy_depthy"), vocab_size=5, feat_dim=4).config["depth"], 2)   # published
    test_fail(lambda: make_config(model="toy_depthy", depth=0), contains="depth=0")
    test_fail(lambda: MODELS.register("toy_other", params={"depth": Param(5, number(int), "other")})(Depthy),
              contains="declared twice")


def test_published_defaults_come_from_the_registry():
    test_eq(MODELS.published("sgr", {"norm": "batch", "dropout": None, "word_dropout": None})["word_dropout"], 0.4)
    test_eq(MODELS.published("sgr", {"norm": "layer", "dropout": None, "word_dropout": None})["word_dropout"], 0.1)
    test_eq(MODELS.published("sgr", {"norm": "batch", "dropout": 0.2, "word_dropout": None})["word_dropout"], 0.2)
    test_eq(MODELS.published("scan_i2t", {"lambda_softmax": None, "lse": None}), {"lambda_softmax": 4.0, "lse": 5.0})
    for norm, want in (("batch", ("adamw", 0.01)), ("layer", ("adam", 0.0))):
        model = build_model(make_config(norm=norm, embed_size=8, word_dim=8), vocab_size=5, feat_dim=4)
        test_eq(optimizer_choice(make_config(), model), want)
    sgr = build_model(make_config(model="sgr", embed_size=8, word_dim=8, sim_dim=4), vocab_size=5, feat_dim=4, n_regions=3)
    test_eq(optimizer_choice(make_config(), sgr), ("adam", 0.0))
    test_eq((sgr.config["word_dropout"], sgr.config["sa_dropout"], sgr.config["lambda_softmax"]), (0.4, 0.4, 9.0))


def test_imports_go_one_way():
    lib = Path(dbl_kit.__file__).parent
    def imports(mod): return set(re.findall(r"^\s*from \.(\w+) import", (lib / f"{mod}.py").read_text(), re.M))
    test_eq(imports("config"), {"core"})
    for mod in ("core", "models", "interaction", "losses", "transfers", "scenarios"):
        assert "config" not in imports(mod), mod

"""Run directories written by the version before the published architectures (norm="batch") load and score exactly as
they did: `tests/fixtures/old_runs` holds one tiny run per changed backbone (vse, sgr, saf), made by that version
with `make_fixture.py`, and the dev/test splits of its data."""
from pathlib import Path

import numpy as np
from fastcore.test import test_close, test_eq
import pytest
import torch

from dbl_kit.data import load_split
from dbl_kit.metrics import retrieval_metrics
from dbl_kit.rundir import RunDir, load_model
from dbl_kit.scenarios import encode_split

FIXTURES = Path(__file__).parent / "fixtures" / "old_runs"


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("backbone", ["vse", "sgr", "saf"])
def test_old_run_scores_as_before(backbone, one_thread):
    run = RunDir(FIXTURES / f"old_{backbone}")
    model, info = load_model(run.path)
    assert "norm" not in info["model"]                        # written before the option existed ...
    assert model.config["norm"] == "layer"                    # ... so it loads with the layers it was trained with
    assert not model.training
    split = load_split(FIXTURES / "tiny_precomp", "test")
    with torch.no_grad():
        img, cap = encode_split(model, split, run.vocab(), torch.device("cpu"), 64)
        sims = model.similarity(img, cap).float()
    saved = np.load(run.sims_file(run.target, "test"))
    np.testing.assert_array_equal(sims.numpy(), saved)
    got = retrieval_metrics(sims, split.captions_per_image)
    want = run.metrics["branches"][run.target]
    # The scores are bit-identical (above); the recalls agree to round-off only, because this version computes them as
    # 100 * count / n where the earlier one computed count / n * 100 (8.333333333333334 against 8.333333333333332).
    test_eq(set(got) <= set(want), True)
    for k in got: test_close(got[k], want[k], eps=1e-9 * max(1.0, abs(want[k])))

"Every transfer trains in every scenario that has a teacher (one tiny epoch each), and none does in the baseline."
import pytest
from fastcore.test import test_eq, test_fail

import dbl_kit
from dbl_kit import SCENARIOS, TRANSFERS

PAIRS = [(s, t) for s in SCENARIOS if SCENARIOS[s].uses_transfer for t in TRANSFERS]


@pytest.mark.slow
@pytest.mark.parametrize("scenario,transfer", PAIRS)
def test_every_scenario_transfer_pair_trains(tmp_path, shapes_data_path, scenario, transfer):
    r = dbl_kit.train(scenario=scenario, transfer=transfer, epochs=1, anchor_epochs=1, max_train_captions=256,
                      batch_size=64, embed_size=16, word_dim=16, threads=1, progress=False, data_path=shapes_data_path,
                      runs_path=str(tmp_path), momentum_halflife=0.3)
    learner = [h for h in r.history if h["branch"] == r.target]
    assert learner and all(h["loss"]["transfer"] == h["loss"]["transfer"] for h in learner)   # finite, not NaN
    test_eq(r.metrics["rsum"] >= 0, True)


def test_baseline_refuses_every_transfer(tmp_path):
    for t in TRANSFERS:
        test_fail(lambda: dbl_kit.train(transfer=t, runs_path=str(tmp_path / t)), contains="nothing to transfer from")
        assert not (tmp_path / t).exists()

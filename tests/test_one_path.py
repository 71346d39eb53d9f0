"""One path for each job: a run reads each dataset file once, and a run's test metrics are what `dbl-kit eval` computes."""
import builtins
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import dbl_kit
from dbl_kit.evaluation import evaluate_runs
from fastcore.test import test_eq

DATA_FILES = ("_ims.npy", "_caps.txt", "_scenes.json")


@pytest.fixture()
def reads(monkeypatch):
    "Counts, per dataset file name, the `np.load` calls of feature files and the opens of caption and scene files."
    counts, real_load, real_open = Counter(), np.load, builtins.open
    def load(file, *a, **k):
        if str(file).endswith("_ims.npy"): counts[Path(file).name] += 1
        return real_load(file, *a, **k)
    def opened(file, *a, **k):
        if isinstance(file, (str, Path)) and str(file).endswith(("_caps.txt", "_scenes.json")): counts[Path(file).name] += 1
        return real_open(file, *a, **k)
    monkeypatch.setattr(np, "load", load)
    monkeypatch.setattr(builtins, "open", opened)
    import io; monkeypatch.setattr(io, "open", opened)
    return counts


@pytest.mark.parametrize("scenario", ["baseline", "offline"])
def test_a_run_reads_each_dataset_file_once(small, reads, scenario):
    dbl_kit.train(scenario=scenario, anchor_epochs=1, **small)
    files = {f"{s}{suffix}" for s in ("train", "dev", "test") for suffix in DATA_FILES}
    print(scenario, dict(sorted(reads.items())))
    test_eq({f: reads[f] for f in files}, {f: 1 for f in files})


def test_a_runs_test_metrics_are_what_eval_computes(small, tmp_path):
    torch.set_num_threads(1)
    r = dbl_kit.train(**small)
    got = evaluate_runs(r.run_dir, split="test", out=tmp_path / "eval", progress=False, data_path=small["data_path"])
    trained = {k: v for k, v in r.metrics.items() if k != "epoch"}
    test_eq(got["protocols"]["all"], trained)
    test_eq(np.load(tmp_path / "eval" / "sims.npy"), np.load(r.run_dir / "sims_baseline_test.npy"))

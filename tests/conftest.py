import os, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_pycollect_makeitem(collector, name, obj):
    "fastcore's `test_eq`/`test_close`/`test_fail`, imported into a test module, are helpers, not tests."
    if getattr(obj, "__module__", None) == "fastcore.test": return []


# The tests that take 20 s to 2 min (a browser, papermill sweeps, two-process runs, stopped subprocesses), started
# first: `-n 2` then ends on short tests instead of one worker waiting for the other's long one.
SLOW_FIRST = ("test_browser.py::test_explore_notebook_in_chromium", "test_notebooks.py::test_tuned_strategies_notebook_small",
              "test_notebooks.py::test_experiment_notebook_small", "test_distributed.py::", "test_nothing_lost.py::",
              "test_cli.py::test_train_report_and_dashed_names", "test_evaluation.py::test_eccv_and_cxc_equal_the_package",
              "test_progress.py::", "test_resume.py::test_sigkill", "test_bench.py::test_gpu_command_ddp")


def pytest_collection_modifyitems(config, items):
    "Run the slow tests first (a stable sort: the order within each group is kept)."
    items.sort(key=lambda item: not any(s in item.nodeid for s in SLOW_FIRST))


@pytest.fixture(scope="session")
def shapes_data_path():
    "The repository's data folder: shapes is generated there once and shared by the tests."
    return str(ROOT / "data")


@pytest.fixture()
def small(tmp_path, shapes_data_path):
    "Parameters for a seconds-long training run on a slice of shapes, writing into a temporary runs folder."
    return dict(data_path=shapes_data_path, runs_path=str(tmp_path / "runs"), max_train_captions=768,
                epochs=1, progress=False, eval_batch_size=256, embed_size=64, word_dim=64, threads=1)


@pytest.fixture()
def ctx_factory(tmp_path, shapes_data_path):
    "Build a trainer RunContext (data, vocabulary, device) without training: for step-level tests."
    def make(**params):
        import torch
        from dbl_kit.config import make_config
        from dbl_kit.trainer import RunContext, prepare_data, prepare_vocab
        cfg = make_config(**{"data_path": shapes_data_path, "runs_path": str(tmp_path / "runs"), **params})
        folder, splits = prepare_data(cfg)
        return RunContext(cfg, torch.device("cpu"), splits, prepare_vocab(cfg, splits["train"]), run=None, folder=folder)
    return make

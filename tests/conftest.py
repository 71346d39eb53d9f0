import os, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shapes_data_path():
    "The repository's data folder: shapes is generated there once and shared by the tests."
    return str(ROOT / "data")


@pytest.fixture()
def small(tmp_path, shapes_data_path):
    "Parameters for a seconds-long training run on a slice of shapes, writing into a temporary runs folder."
    return dict(data_path=shapes_data_path, runs_path=str(tmp_path / "runs"), max_train_captions=768,
                epochs=1, progress=False, eval_batch_size=256, embed_size=64, word_dim=64)

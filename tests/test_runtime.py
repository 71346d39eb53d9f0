"Threads on a shared machine and exact resume: the choice is recorded, and a resume at another thread count warns."
import json

import pytest
import torch
from fastcore.test import test_eq

import dbl_kit
from dbl_kit.runtime import allowed_cores, TORCH_THREADS


def test_default_threads_are_chosen_and_recorded_and_a_changed_count_warns(small):
    r = dbl_kit.train(**{**small, "threads": 0, "tensorboard": False})
    cfg = json.loads((r.run_dir / "config.json").read_text())
    choice = cfg["threads_choice"]
    test_eq(cfg["threads_used"], choice["threads"])
    assert 1 <= choice["threads"] <= min(allowed_cores(), TORCH_THREADS)
    test_eq((choice["requested"], choice["cores"]), (0, allowed_cores()))
    assert choice["busy"] is not None and choice["omp_wait_policy"]           # measured; passive unless set by the user
    other = 1 if choice["threads"] != 1 else 2
    (r.run_dir / "metrics.json").unlink()                                       # stopped after its last epoch
    with pytest.warns(UserWarning, match="exact resume holds only at equal thread counts"):
        dbl_kit.train(resume=str(r.run_dir), threads=other)
    test_eq(json.loads((r.run_dir / "config.json").read_text())["resumes"][-1]["threads_used"], other)
    (r.run_dir / "metrics.json").unlink()
    import warnings
    with warnings.catch_warnings(record=True) as seen:                          # without threads: the state's own count
        warnings.simplefilter("always")
        dbl_kit.train(resume=str(r.run_dir))
    assert not [w for w in seen if "thread counts" in str(w.message)]
    test_eq(json.loads((r.run_dir / "config.json").read_text())["resumes"][-1]["threads_used"], choice["threads"])

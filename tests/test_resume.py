"""Exact resume: a run killed with SIGKILL at any moment and resumed ends with the metrics of a run never interrupted."""
import json, random, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

import dbl_kit
from dbl_kit.core import KitError
from dbl_kit.rundir import RunDir, checkpoint_info, file_digest

RUNNER = Path(__file__).with_name("kill_runner.py")
# Two stages (anchor, then target), 5 batches per epoch, a training state every 2 steps and at every epoch end.
PARAMS = dict(scenario="offline", epochs=2, anchor_epochs=2, max_train_captions=640, embed_size=32, word_dim=32,
              threads=1, progress=False, checkpoint_every=2, eval_batch_size=256)
STEPS = 20                      # 2 stages x 2 epochs x 5 batches
# Kill points: after a training step, or in the middle of the N-th file write (N counted from the end when
# negative, or a fraction of all writes: how many checkpoints a run writes depends on when its dev rSum improves,
# which float round-off on another CPU can change). Fixed ones (the first state, a best checkpoint, finish_run's
# writes) and random ones drawn once from a seeded generator.
_rng = random.Random(12)
POINTS = ([("write", 3), ("write", 8), ("write", -2), ("step", 7)]
          + [("step", n) for n in _rng.sample(range(1, STEPS), 2)] + [("write", f) for f in (0.4, 0.75)])

def _final(run_dir):
    "What must not depend on interruptions: metrics.json without times, history without times, the saved matrices."
    m = json.loads((run_dir / "metrics.json").read_text()); m.pop("train_seconds")
    hist = [{k: v for k, v in r.items() if k != "seconds"} for r in RunDir(run_dir).history()]
    sims = {p.name: np.load(p) for p in sorted(run_dir.glob("sims_*.npy"))}
    return m, hist, sims

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    res = dbl_kit.train(runs_path=str(tmp_path_factory.mktemp("ref")), run_name="ref", **PARAMS)
    return _final(res.run_dir)

def _kill(point, n, runs):
    params = {**PARAMS, "runs_path": str(runs), "run_name": "run"}
    r = subprocess.run([sys.executable, str(RUNNER), point, str(n), json.dumps(params)], capture_output=True, text=True, timeout=300)
    return r, runs / "run"

def _assert_no_partial_file(run_dir: Path):
    "Every file under its real name is whole: JSON parses, safetensors match the digest their JSON records, .npy loads."
    for p in run_dir.rglob("*"):
        if not p.is_file() or p.name.startswith("."): continue     # hidden .<name>.*.tmp: a write that never finished
        if p.suffix == ".json": json.loads(p.read_text())
        elif p.suffix == ".jsonl": [json.loads(line) for line in p.read_text().splitlines()]
        elif p.suffix == ".npy": np.load(p)
        elif p.suffix == ".safetensors" and p.parent.name == "state":      # a state: its JSON (written last) matches it
            if p.with_suffix(".json").exists():                           # (no JSON: never committed, resume removes it)
                assert file_digest(p) == json.loads(p.with_suffix(".json").read_text())["file"], p
        elif p.suffix == ".safetensors":        # a checkpoint: whole by its JSON or, killed between the two, by its header
            meta = p.with_suffix(".json")
            if not meta.exists() or file_digest(p) != json.loads(meta.read_text())["file"]:
                checkpoint_info(p, "")

@pytest.fixture(scope="module")
def writes(tmp_path_factory):
    "How many steps and file writes the run makes (the runner counts them when it kills nothing)."
    r, _ = _kill("none", 0, tmp_path_factory.mktemp("count"))
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert counts["step"] == STEPS and counts["write"] > 30, counts
    return counts["write"]

@pytest.mark.parametrize("point,n", POINTS, ids=[f"{p}{n}" for p, n in POINTS])
def test_sigkill_then_resume_equals_uninterrupted(point, n, tmp_path, reference, writes):
    if point == "write": n = n + writes + 1 if n < 0 else int(n * writes) if isinstance(n, float) else n
    r, run_dir = _kill(point, n, tmp_path)
    assert r.returncode == -9, f"the runner was not killed at {point} {n}: {r.returncode} {r.stderr[-500:]}"
    assert not (run_dir / "metrics.json").exists()
    _assert_no_partial_file(run_dir)
    run = RunDir(run_dir)
    tensors, meta, problems = run.load_state()
    assert problems == []
    if run.state_files(): assert meta and tensors     # the newest state loads
    res = dbl_kit.train(resume=str(run_dir))
    assert not list(run_dir.rglob(".*.tmp")), "resume removes what the killed write left"
    assert all(p.with_suffix(".json").exists() for p in (run_dir / "state").glob("*.safetensors"))
    m, hist, sims = _final(res.run_dir)
    ref_m, ref_hist, ref_sims = reference
    assert m == ref_m
    assert hist == ref_hist
    assert sims.keys() == ref_sims.keys() and all(np.array_equal(sims[k], ref_sims[k]) for k in sims)

def test_truncated_state_falls_back_to_the_previous_one(tmp_path, reference):
    r, run_dir = _kill("step", 13, tmp_path)      # target stage, mid-epoch: several states on disk
    assert r.returncode == -9
    run = RunDir(run_dir)
    newest = run.state_files()[0].with_suffix(".safetensors")
    newest.write_bytes(newest.read_bytes()[:1000])
    _, meta, problems = run.load_state()
    assert len(problems) == 1 and newest.name in problems[0] and "truncated" in problems[0]
    res = dbl_kit.train(resume=str(run_dir))
    assert newest.name in RunDir(run_dir).config["resumes"][0]["damaged_states_skipped"][0]
    m, hist, sims = _final(res.run_dir)
    assert (m, hist) == reference[:2]

def test_resume_refuses_changed_parameters_and_returns_a_finished_run(tmp_path):
    res = dbl_kit.train(runs_path=str(tmp_path), run_name="done", **{**PARAMS, "scenario": "baseline", "epochs": 1})
    with pytest.raises(KitError, match=r"lr=0.1 \(the run has 0.0005\).*drop them"):
        dbl_kit.train(resume=str(res.run_dir), lr=0.1)
    again = dbl_kit.train(resume=str(res.run_dir), progress=True)       # finished: nothing to do, same result
    assert again.metrics == res.metrics
    with pytest.raises(KitError, match="does not exist"):
        dbl_kit.train(resume=str(tmp_path / "nope"))


OTHERS = {"momentum": dict(scenario="momentum", momentum_halflife=0.2),          # the EMA anchor's weights are state too
          "online-3": dict(scenario="online", n_branches=3),
          "ave": dict(model="ave", sim_dim=16, embed_size=16, word_dim=16, dataset="coco", batch_size=16)}   # tiny data

@pytest.mark.parametrize("name", OTHERS)
def test_resume_other_scenarios_and_backbones(name, tmp_path):
    params = {**PARAMS, "scenario": "baseline", "anchor_epochs": None, "max_train_captions": 384, **OTHERS[name]}
    params = {k: v for k, v in params.items() if v is not None}
    if params.get("dataset") == "coco":   # an interaction head scores every dev/test pair: a tiny COCO-format folder
        from test_train import _tiny_precomp
        _tiny_precomp(tmp_path / "data" / "coco_precomp", regions=12, dim=64)
        params["data_path"] = str(tmp_path / "data")
    ref = dbl_kit.train(runs_path=str(tmp_path / "ref"), run_name="ref", **params)
    r = subprocess.run([sys.executable, str(RUNNER), "step", "4", json.dumps({**params, "runs_path": str(tmp_path / "k"),
                        "run_name": "run"})], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-500:]
    res = dbl_kit.train(resume=str(tmp_path / "k" / "run"))
    assert _final(res.run_dir)[:2] == _final(ref.run_dir)[:2]

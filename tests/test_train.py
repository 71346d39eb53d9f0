"End-to-end checks of dbl_kit.train: determinism, scenarios, run directories, real-format data, errors."
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dbl_kit
from dbl_kit.core import KitError, read_jsonl
from dbl_kit.rundir import FORMAT_VERSION, RunDir
from dbl_kit.metrics import retrieval_metrics
from fastcore.test import test_eq


def test_same_seed_same_metrics(small):
    a = dbl_kit.train(seed=5, **small)
    b = dbl_kit.train(seed=5, **small)
    assert a.metrics == b.metrics
    assert np.array_equal(np.load(a.run_dir / "sims_baseline_test.npy"), np.load(b.run_dir / "sims_baseline_test.npy"))
    c = dbl_kit.train(seed=6, **small)
    assert c.metrics != a.metrics


def test_run_directory_is_consistent(small):
    r = dbl_kit.train(**small)
    d = r.run_dir
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["target"] == "baseline" and cfg["branches"] == ["baseline"]
    m = json.loads((d / "metrics.json").read_text())
    # the saved float32 test similarities reproduce the reported metrics exactly
    sims = np.load(d / "sims_baseline_test.npy")
    assert sims.dtype == np.float32
    recomputed = retrieval_metrics(sims, 5)
    test_eq({k: recomputed[k] for k in recomputed}, {k: m["branches"]["baseline"][k] for k in recomputed})
    assert cfg["format_version"] == FORMAT_VERSION and cfg["threads_used"] >= 1
    vocab = json.loads((d / "vocab.json").read_text())
    assert {"word2idx", "idx2word", "idx"} <= set(vocab)
    hist = read_jsonl(d / "history.jsonl")
    assert [h["epoch"] for h in hist] == [1] and hist[0]["split"] == "dev" and "base" in hist[0]["loss"]
    assert not list(d.glob(".*.tmp"))   # no temporary left behind


@pytest.mark.parametrize("scenario,extra,branches,target", [
    ("offline", dict(anchor_epochs=1, transfer="abs_max"), ["anchor", "target"], "target"),
    ("online", dict(n_branches=3, transfer="rel_sum"), ["branch0", "branch1", "branch2"], "branch2"),
    ("momentum", dict(momentum=0.99, adaptation="soft"), ["target", "anchor"], "target"),
])
def test_scenarios_report_every_branch(small, scenario, extra, branches, target):
    r = dbl_kit.train(scenario=scenario, **extra, **small)
    m = json.loads((r.run_dir / "metrics.json").read_text())
    assert m["target"] == target and sorted(m["branches"]) == sorted(branches)
    for b in branches:
        assert (r.run_dir / f"{b}.safetensors").exists()
        assert (r.run_dir / f"sims_{b}_dev.npy").exists() and (r.run_dir / f"sims_{b}_test.npy").exists()
    assert {h["branch"] for h in read_jsonl(r.run_dir / "history.jsonl")} == set(branches)


def test_offline_from_anchor_checkpoint(small):
    base = dbl_kit.train(**small)
    r = dbl_kit.train(scenario="offline", anchor_ckpt=str(base.run_dir), **small)
    m = json.loads((r.run_dir / "metrics.json").read_text())
    # the frozen anchor is the baseline's best checkpoint: same test metrics
    assert m["branches"]["anchor"]["rsum"] == pytest.approx(base.metrics["rsum"], abs=1e-6)
    assert [h["stage"] for h in read_jsonl(r.run_dir / "history.jsonl")] == ["target", "target"]


def test_offline_cached_anchor_equals_recomputed(small, ctx_factory):
    "The cached anchor matrix of a batch equals the anchor recomputed on that batch."
    import copy
    from dbl_kit.scenarios import Offline, encode_split
    ctx = ctx_factory(scenario="offline", **small)
    anchor = ctx.new_model(0)
    cache = encode_split(anchor, ctx.splits["train"], ctx.vocab, ctx.device, 256)
    cached = Offline(ctx.cfg, copy.deepcopy(anchor), copy.deepcopy(anchor), cache)
    plain = Offline(ctx.cfg, copy.deepcopy(anchor), copy.deepcopy(anchor))
    batch = next(iter(ctx.loader(0)))
    a1, a2 = cached.similarities(batch)["anchor"], plain.similarities(batch)["anchor"]
    assert torch.allclose(a1, a2, atol=1e-5)


def _tiny_precomp(folder, n_img=(40, 10, 10), regions=36, dim=2048, seed=0):
    "A tiny folder in COCO's precomp format (36 regions x 2048 features, 5 captions per image)."
    rng = np.random.default_rng(seed)
    words = "a man woman dog cat red blue sitting standing on the grass table near with".split()
    folder.mkdir(parents=True)
    for split, n in zip(("train", "dev", "test"), n_img):
        np.save(folder / f"{split}_ims.npy", rng.random((n, regions, dim), dtype=np.float32))
        caps = [" ".join(rng.choice(words, size=rng.integers(4, 10))) for _ in range(5 * n)]
        (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n")


def test_trains_on_coco_format_folder(tmp_path, small):
    _tiny_precomp(tmp_path / "data" / "coco_precomp")
    r = dbl_kit.train(**{**small, "dataset": "coco", "data_path": str(tmp_path / "data"), "batch_size": 16})
    sims = np.load(r.run_dir / "sims_baseline_test.npy")
    assert sims.shape == (10, 50) and sims.dtype == np.float32
    assert 0 <= r.metrics["rsum"] <= 600


def test_missing_coco_names_folder_and_files(tmp_path):
    with pytest.raises(KitError) as e:
        dbl_kit.train(dataset="coco", data_path=str(tmp_path), progress=False)
    msg = str(e.value)
    assert str(tmp_path / "coco_precomp") in msg and "train_ims.npy" in msg and "train_caps.txt" in msg


@pytest.mark.parametrize("bad,needle", [
    (dict(epochs=0), "epochs=0"), (dict(model="resnet"), "model='resnet'"), (dict(scenaro="offline"), "scenario"),
    (dict(dataset="/no/such/folder"), "/no/such/folder"),
])
def test_bad_parameters_stop_before_work(tmp_path, bad, needle):
    with pytest.raises(KitError, match=needle.replace("(", r"\(")):
        dbl_kit.train(runs_path=str(tmp_path / "runs"), progress=False, **bad)
    assert not (tmp_path / "runs").exists()   # nothing was written


def test_reference_recipe_settings(small):
    "caption_aug is seeded and changes training; momentum_halflife sets and records the momentum; the offline target's lr restarts."
    a = dbl_kit.train(caption_aug=0.2, seed=1, **small)
    b = dbl_kit.train(caption_aug=0.2, seed=1, **small)
    c = dbl_kit.train(seed=1, **small)
    assert a.metrics == b.metrics and a.metrics != c.metrics
    m = dbl_kit.train(scenario="momentum", momentum_halflife=0.25, **small)
    cfg = json.loads((m.run_dir / "config.json").read_text())
    steps = cfg["total_steps"]
    assert steps == 1 * -(-768 // 128)
    assert cfg["momentum_halflife"] == 0.25 and abs(cfg["momentum_halflife_steps"] - 0.25 * steps) < 1e-9
    assert abs(cfg["momentum_start"] - 0.5 ** (1 / (0.25 * steps))) < 1e-12
    raw = json.loads((dbl_kit.train(scenario="momentum", momentum=0.99, **small).run_dir / "config.json").read_text())
    assert abs(raw["momentum_halflife_steps"] - 68.967) < 1e-3 and raw["momentum_start"] == 0.99
    off = dbl_kit.train(scenario="offline", anchor_epochs=2, lr_decay_epochs=1, **small)
    hist = read_jsonl(off.run_dir / "history.jsonl")
    assert [h["lr"] for h in hist if h["stage"] == "anchor"] == [5e-4, 5e-5]   # the anchor's lr decayed...
    assert [h["lr"] for h in hist if h["branch"] == "target"] == [5e-4]         # ...the target's restarts at lr


def test_transfer_without_a_teacher_stops_before_work(tmp_path, small):
    with pytest.raises(KitError, match="nothing to transfer from"):
        dbl_kit.train(**{**small, "runs_path": str(tmp_path / "none")}, transfer="dino")
    assert not (tmp_path / "none").exists()


def test_ema_buffers_decide_the_anchors_batchnorm_statistics(small):
    "ema_buffers='keep' (the DBL reference) leaves the EMA anchor's BatchNorm statistics as built; 'copy' gives it the target's."
    from safetensors.torch import load_file
    saved = {}
    for mode in ("copy", "keep"):
        r = dbl_kit.train(model="vse", scenario="momentum", momentum_halflife=0.3, ema_buffers=mode, **small)
        assert json.loads((r.run_dir / "config.json").read_text())["ema_buffers"] == mode
        saved[mode] = {b: {k: v for k, v in load_file(r.run_dir / f"{b}.safetensors").items() if "running_" in k}
                       for b in ("anchor", "target")}
    keep, copy = saved["keep"]["anchor"], saved["copy"]["anchor"]
    assert keep and all(torch.equal(v, torch.zeros_like(v) if k.endswith("mean") else torch.ones_like(v)) for k, v in keep.items())
    assert not all(torch.equal(v, keep[k]) for k, v in copy.items())       # copied statistics moved away from the initial ones
    assert all(torch.equal(v, saved["copy"]["target"][k]) for k, v in copy.items())   # one epoch: both saved at its end


def test_offline_control_is_the_target_without_its_transfer(small):
    "With alpha 0 and no dropout the target learns exactly what its same-budget control learns; with DBL they differ."
    quiet = dict(scenario="offline", control=True, anchor_epochs=1, word_dropout=0.0, region_drop=0.0, **small)
    r = dbl_kit.train(alpha=0.0, **quiet)
    run = RunDir(r.run_dir)
    assert run.branches == ["anchor", "control", "target"] and run.target == "target"
    hist = [h for h in run.history() if h["stage"] == "target"]
    assert {h["branch"] for h in hist} == {"anchor", "control", "target"}
    assert all(h["loss"]["transfer"] == 0.0 for h in hist if h["branch"] == "control")
    test_eq(r.branches["control"]["rsum"], r.branches["target"]["rsum"])
    np.testing.assert_allclose(np.load(r.run_dir / "sims_control_test.npy"), np.load(r.run_dir / "sims_target_test.npy"),
                               rtol=0, atol=1e-6)
    boosted = dbl_kit.train(alpha=1.0, **quiet)
    assert not np.allclose(np.load(boosted.run_dir / "sims_control_test.npy"), np.load(boosted.run_dir / "sims_target_test.npy"))


@pytest.mark.parametrize("random_anchor", [False, True])
def test_offline_random_anchor_changes_only_the_anchor_of_the_transfer(small, ctx_factory, random_anchor):
    "random_anchor: the target and control start from the trained anchor; the transfer's frozen anchor is branch 2's fresh init."
    from dbl_kit.scenarios import Offline
    ctx = ctx_factory(scenario="offline", control=True, random_anchor=random_anchor, anchor_cache_mb=0.0, **small)
    trained = ctx.new_model(0)
    with torch.no_grad():
        for p in trained.parameters(): p.add_(0.5)      # "trained": weights no initialisation gives
    class Saved:                                         # the run directory's stand-in: the anchor stage's best checkpoint
        def load_model(self, name, device): return trained, {}
    ctx.run = Saved()
    stages = Offline.stages(ctx)
    test_eq(next(stages).name, "anchor")
    target_stage = next(stages)
    scenario = target_stage.scenario
    fresh = ctx.new_model(2).state_dict()                # built here, independently of the scenario
    want = fresh if random_anchor else trained.state_dict()
    anchor = scenario.branch("anchor").model.state_dict()
    assert all(torch.equal(anchor[k], want[k]) for k in want)
    assert not scenario.branch("anchor").learns and not any(p.requires_grad for p in scenario.branch("anchor").model.parameters())
    for name in ("target", "control"):                   # both start from the trained weights, whatever the anchor is
        start = scenario.branch(name).model.state_dict()
        assert all(torch.equal(start[k], v) for k, v in trained.state_dict().items())

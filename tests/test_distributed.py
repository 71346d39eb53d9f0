"""Distributed training: one step on 2 gloo ranks equals one single-process step on the same global batch, and a
2-rank run on `shapes` completes through `torchrun -m dbl_kit train` and can be resumed."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dbl_kit
from dbl_kit.rundir import RunDir

HERE = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

def _steps(folder, cases, ranks):
    "One step of every case in one process (ranks=1) or in one 2-rank torchrun group: {case: saved tensors}."
    folder.mkdir()
    cmd = (TORCHRUN if ranks == 2 else [sys.executable]) + [str(HERE / "ddp_step.py"), str(folder), json.dumps(cases)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return {name: load_file(str(folder / f"{name}.safetensors")) for name in cases}

# dropout 0: dropout masks are drawn per rank. vse with norm="layer": the published BatchNorm (norm="batch") takes its
# training statistics over each rank's own rows, as DDP without SyncBatchNorm does, and its region dropping draws per
# rank, so only the LayerNorm variant makes one 2-rank step equal one single-process step.
# Odd batch sizes split unevenly (32 + 31 rows). The online scenario
# gathers a teacher's rows; momentum gathers the EMA anchor's; CMPM gathers image ids; ave has a learned head.
# Momentum uses `kd` here: at its first step the anchor is a copy of the target, so in rel_max/abs_max every
# negative ties for the max and float round-off (which differs between a 64-row and two 32-row products) picks
# which one gets the gradient; that is the loss's kink, not the gather's error.
CASES = {
    "vse-online": dict(model="vse", norm="layer", scenario="online", embed_size=32, word_dim=32, batch_size=64),
    "vse-momentum-cmpm-odd": dict(model="vse", norm="layer", scenario="momentum", transfer="kd", embed_size=32, word_dim=32,
                                  batch_size=63, base_loss="triplet+cmpm"),
    "ave-baseline": dict(model="ave", scenario="baseline", embed_size=32, word_dim=32, sim_dim=16, batch_size=48),
    "scan_i2t-baseline": dict(model="scan_i2t", scenario="baseline", embed_size=32, word_dim=32, batch_size=48),
}

def _check_case(name, params, one, two):
    "Case `name`: the 2-rank step (`two`) equals the single-process step (`one`) up to float32 round-off."
    assert int(one["batch_rows"]) == params["batch_size"] and int(two["batch_rows"]) == (params["batch_size"] + 1) // 2, name
    weights = [k for k in one if "/" in k and not k.startswith(("loss/", "grad/"))]
    assert weights and weights == [k for k in two if "/" in k and not k.startswith(("loss/", "grad/"))], name
    for k in [k for k in one if k.startswith("loss/")]: torch.testing.assert_close(two[k], one[k], rtol=1e-6, atol=1e-5, msg=name)
    worst = max((one[k].float() - two[k].float()).abs().max().item() for k in weights)
    assert worst < 1e-5, f"{name}: largest parameter difference after one step: {worst}"
    grads = [k for k in one if k.startswith("grad/")]
    assert grads and max((one[k] - two[k]).abs().max().item() for k in grads) < 1e-5, name

def test_two_rank_step_equals_single_process_step(tmp_path):
    "Every case in one test: two launches (one process, one 2-rank group) run all cases; a launch costs more than a step."
    cases = {name: {**params, "dropout": 0.0, "max_train_captions": 256} for name, params in CASES.items()}
    one, two = _steps(tmp_path / "one", cases, 1), _steps(tmp_path / "two", cases, 2)
    for name, params in cases.items(): _check_case(name, params, one[name], two[name])

def test_two_rank_run_completes_and_resumes_in_one_process(tmp_path):
    args = ["--scenario", "offline", "--epochs", "1", "--anchor_epochs", "1", "--max_train_captions", "640",
            "--embed_size", "32", "--word_dim", "32", "--threads", "1", "--progress", "False", "--dropout", "0", "--norm", "layer",
            "--runs_path", str(tmp_path), "--run_name", "ddp", "--eval_batch_size", "256"]
    r = subprocess.run(TORCHRUN + ["-m", "dbl_kit", "train", *args], capture_output=True, text=True, timeout=600, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("TrainResult(") == 1, r.stdout[-2000:]         # the result is printed once, by rank 0
    run = RunDir(tmp_path / "ddp")
    assert run.finished and run.config["ranks"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]          # rank 1 wrote nothing of its own
    assert [(h["stage"], h["branch"]) for h in run.history()] == [("anchor", "anchor"), ("target", "anchor"), ("target", "target")]
    # the same run in one process: the same batches and, without dropout, the same steps up to float round-off
    from dbl_kit.cli import parse_value
    single = dbl_kit.train(**{a.lstrip("-"): parse_value(v) for a, v in zip(args[::2], args[1::2]) if a not in ("--runs_path", "--run_name")},
                           runs_path=str(tmp_path / "single"))
    ddp_rsum, one_rsum = run.metrics["branches"]["target"]["rsum"], single.metrics["rsum"]
    assert abs(ddp_rsum - one_rsum) < 1.0, (ddp_rsum, one_rsum)
    # resume with another number of processes: undo the last epoch (its state and the end of the run), go on in one
    newest = run.state_files()[0]
    newest.with_suffix(".safetensors").unlink(); newest.unlink(); (run.path / "metrics.json").unlink()
    again = dbl_kit.train(resume=str(run.path))
    resumed = RunDir(run.path)
    assert resumed.config["resumes"][-1]["ranks"] == 1 and len(resumed.history()) == 3
    assert abs(again.metrics["rsum"] - ddp_rsum) < 1.0, (again.metrics["rsum"], ddp_rsum)

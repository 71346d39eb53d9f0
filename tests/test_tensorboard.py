"A run's TensorBoard events, read back with TensorBoard's own reader and checked against the run's history.jsonl."
import json

import pytest
from fastcore.test import test_eq, test_close

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import dbl_kit


def scalars(run_dir):
    acc = EventAccumulator(str(run_dir / "tensorboard")); acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_offline_run_logs_both_branches(small):
    r = dbl_kit.train(**{**small, "max_train_captions": 256, "batch_size": 32, "epochs": 2}, scenario="offline",
                      anchor_epochs=2, tensorboard=True)
    cfg = json.loads((r.run_dir / "config.json").read_text())
    test_eq((cfg["tensorboard"], cfg["tensorboard_used"]), (True, True))
    s = scalars(r.run_dir)
    print("scalars:", " ".join(sorted(s)))
    for tag in ("loss/anchor/total", "loss/anchor/base", "loss/target/total", "loss/target/base", "loss/target/transfer",
                "lr/anchor", "lr/target", "dev/anchor/rsum", "dev/target/rsum", "dev/target/i2t_r1",
                "test/anchor/rsum", "test/target/rsum"):
        assert tag in s, (tag, sorted(s))
    steps_per_epoch = 256 // 32
    # dev metrics: one point per epoch, at the run's global step (the target's stage continues after the anchor's 16 steps)
    hist = [json.loads(l) for l in (r.run_dir / "history.jsonl").read_text().splitlines() if l.strip()]
    offset = {"anchor": 0, "target": 2 * steps_per_epoch}   # the stage's first global step
    for branch in ("anchor", "target"):
        rows = [h for h in hist if h["branch"] == branch]      # the static anchor is evaluated once more in the target's stage
        test_eq([st for st, _ in s[f"dev/{branch}/rsum"]], [offset[h["stage"]] + h["step"] for h in rows])
        for (_, v), h in zip(s[f"dev/{branch}/rsum"], rows): test_close(v, h["rsum"], eps=1e-4 * max(1.0, h["rsum"]))
        test_close(s[f"lr/{branch}"][0][1], [h for h in rows if h["lr"] is not None][0]["lr"], eps=1e-9)
    test_close(s["test/target/rsum"][0][1], r.metrics["rsum"], eps=1e-4 * max(1.0, r.metrics["rsum"]))
    # losses every 10 steps of the global count
    test_eq([st for st, _ in s["loss/anchor/total"]], [10])
    test_eq([st for st, _ in s["loss/target/total"]], [20, 30])


def test_off_and_resume_appends(small):
    r = dbl_kit.train(**small, tensorboard=False)
    assert not (r.run_dir / "tensorboard").exists()
    test_eq(json.loads((r.run_dir / "config.json").read_text())["tensorboard_used"], False)
    r = dbl_kit.train(**{**small, "run_name": "tb"}, tensorboard=True)
    before = scalars(r.run_dir)
    (r.run_dir / "metrics.json").unlink()              # stopped after its last epoch: resume evaluates again
    dbl_kit.train(resume=str(r.run_dir))
    after = scalars(r.run_dir)
    test_eq(len(list((r.run_dir / "tensorboard").glob("events.out.tfevents.*"))), 2)   # appended, not overwritten
    for tag, points in before.items(): test_eq([p[0] for p in after[tag]], [p[0] for p in points])   # no step twice

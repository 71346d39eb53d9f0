"The command line, run as a user runs it: `python -m dbl_kit ...` in a subprocess."
import json, subprocess, sys
from pathlib import Path

from fastcore.test import test_eq


def dbl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dbl_kit", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_train_report_and_dashed_names(tmp_path, shapes_data_path):
    r = dbl("train", "--data_path", shapes_data_path, "--runs-path", str(tmp_path), "--max-train-captions", "512",
            "--epochs", "1", "--embed_size", "32", "--word_dim", "32", "--progress", "False", "--threads", "1",
            "--run_name", "cli")
    test_eq(r.returncode, 0)
    cfg = json.loads((tmp_path / "cli" / "config.json").read_text())
    test_eq((cfg["max_train_captions"], cfg["embed_size"], cfg["progress"]), (512, 32, False))
    rep = dbl("report", str(tmp_path / "cli"))
    test_eq(rep.returncode, 0)
    assert "baseline*" in rep.stdout and "rsum" in rep.stdout
    # resume from the shell: stopped after its epoch (metrics.json gone), the run is finished again in place
    before = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    (tmp_path / "cli" / "metrics.json").unlink()
    again = dbl("train", "--resume", str(tmp_path / "cli"), "--progress", "False")
    test_eq(again.returncode, 0)
    after = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    before.pop("train_seconds"); after.pop("train_seconds")
    test_eq(after, before)
    test_eq(sorted(p.name for p in tmp_path.iterdir()), ["cli"])


def test_errors_are_one_sentence(tmp_path):
    r = dbl("train", "--scenario", "offlne", "--runs_path", str(tmp_path / "runs"))
    test_eq(r.returncode, 2)
    test_eq(r.stderr.count("\n"), 1)              # one line, no traceback
    assert r.stderr.startswith("error: Parameter scenario='offlne' is invalid") and "'offline'" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_check_reports_every_problem(tmp_path):
    folder = tmp_path / "broken"; folder.mkdir()
    (folder / "train_caps.txt").write_text("a cat\n")
    r = dbl("check", str(folder))
    test_eq(r.returncode, 1)
    assert "train_ims.npy" in r.stdout and "problem(s)" in r.stdout


def test_help_lists_every_parameter():
    from dbl_kit import PARAMS
    out = dbl("train", "--help").stdout
    for name in PARAMS: assert f"--{name}" in out, name

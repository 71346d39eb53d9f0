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


def test_typos_get_the_kits_rule():
    "No prefix matching, the closest option suggested, a bad value answered with the accepted values listed once."
    for args, says in ((["--epoch", "1"], "error: unknown option --epoch. Did you mean --epochs?"),
                       (["--epocs", "1"], "error: unknown option --epocs. Did you mean --epochs?"),
                       (["--epocs=1"], "error: unknown option --epocs. Did you mean --epochs?")):
        r = dbl("train", *args)
        test_eq(r.returncode, 2)
        test_eq(r.stderr.count("\n"), 1)
        assert r.stderr.startswith(says), r.stderr
    r = dbl("train", "--transfer", "relmax")
    test_eq(r.returncode, 2)
    test_eq(r.stderr.count("\n"), 1)
    assert r.stderr.startswith("error: Parameter transfer='relmax' is invalid: did you mean 'rel_max'? accepted values:"), r.stderr
    test_eq(r.stderr.count("'abs_max'"), 1)          # listed once, no help text of every transfer
    assert len(r.stderr) < 300, len(r.stderr)


def test_ctrl_c_saves_prints_the_resume_command_and_exits_130(tmp_path, shapes_data_path):
    "SIGINT during training: the state is saved, one line gives the resume command, exit 130; the resume finishes."
    import os, signal, subprocess
    args = ["--data_path", shapes_data_path, "--runs_path", str(tmp_path), "--max_train_captions", "1024",
            "--batch_size", "32", "--epochs", "2", "--embed_size", "32", "--word_dim", "32", "--threads", "1",
            "--run_name", "stopped", "--tensorboard", "False"]
    env = {**os.environ, "DBL_PROGRESS": "lines"}
    p = subprocess.Popen([sys.executable, "-m", "dbl_kit", "train", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, cwd=tmp_path)
    seen = []
    for line in p.stderr:                       # wait for the first progress line of the first epoch
        seen.append(line)
        if line.startswith("train epoch 1/2:"): break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    test_eq(p.returncode, 130)
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("train epoch")]
    test_eq(lines, ["Stopped; resume with dbl-kit train --resume stopped"])   # relative to the current folder
    run = tmp_path / "stopped"
    assert (run / "state").exists() and not (run / "metrics.json").exists()
    again = subprocess.run([sys.executable, "-m", "dbl_kit", "train", "--resume", "stopped", "--progress", "False"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=600)
    test_eq(again.returncode, 0)
    assert (run / "metrics.json").exists()
    test_eq(len([l for l in (run / "history.jsonl").read_text().splitlines() if l.strip()]), 2)   # both epochs, once each

"""`python -m dbl_kit.bench_published`: the kit against published code imported from checkouts. Here the checkouts are
the stand-ins of tests/published_standin (small, written for these tests, with the constructs that need the bench's
shims), so no network is needed. Checked: the table and the JSON line agree, the two sides agree, the shims are named,
a missing or wrong checkout is a clear error, and the repositories' modules do not stay in sys.modules. No timing is
asserted."""
import json, shutil, subprocess, sys
from pathlib import Path

import pytest
from fastcore.test import test_eq, test_close, test_fail

from dbl_kit.bench_published import bench_published, format_table, summary_json, main, find_repo
from dbl_kit.core import KitError

STANDIN = Path(__file__).with_name("published_standin")
ROOT = Path(__file__).resolve().parents[1]
HEADS = ("sgr", "saf", "ave", "scan_t2i", "scan_i2t", "vse")


@pytest.fixture(scope="module")
def result():
    return bench_published(STANDIN, HEADS, "small", batch=6, rounds=2, threads=1)


def test_both_sides_agree_on_every_head(result):
    for head in HEADS:
        x = result["heads"][head]
        assert "error" not in x, x
        assert x["agree"] and x["loss_rel"] <= 1e-4 and x["sims_max_abs"] <= 1e-4, head
        test_eq(len(x["losses"]), 2)                       # one loss pair per round: the weights move in step
        test_close(x["losses"][1][0], x["losses"][1][1], eps=1e-4 * abs(x["losses"][1][0]))
        assert x["encode_max_abs"] < 1e-5


def test_table_and_json_line_agree(result):
    table, line = format_table(result).splitlines(), json.loads(summary_json(result))
    rows = {l.split()[0]: l.split() for l in table[2:] if l.split()[0] in HEADS}
    test_eq(set(rows), set(HEADS))
    for head in HEADS:
        r, j = rows[head], line[head]
        test_close(float(r[3]), j["step_ratio"], eps=0.006)          # the table prints two decimals
        test_close(float(r[6]), j["eval_ratio"], eps=0.006)
        test_close(float(r[7]), j["encode_ratio"], eps=0.006)
        test_close(float(r[1]) / float(r[2]), j["step_ratio"], eps=0.01 * j["step_ratio"] + 0.01)   # seconds to 4 digits
        pub_pairs, kit_pairs = (float(v.replace(",", "")) for v in r[4:6])
        test_close(kit_pairs / pub_pairs, j["eval_ratio"], eps=0.01 * j["eval_ratio"] + 0.01)
        assert r[8] == "yes:" and j["agree"] is True
    test_eq((line["size"], line["batch"], line["threads"]), ("small", 6, 1))
    assert "size small" in table[0] and "1 threads" in table[0] and "load average" in table[0]


def test_shims_are_named_per_repository(result):
    shims = result["shims"]
    test_eq(set(shims), {"SGRAF", "DBL", "SCAN", "vse_infty"})
    for repo in shims: assert "cuda->cpu" in shims[repo]
    scan = " ".join(shims["SCAN"])
    for name in ("stub:standin_uninstalled_cnn_models", "rewrite:EncoderText.forward", "rewrite:SCAN.forward_loss",
                 "loss.data[0] -> loss.item()", "rewrite:evaluation.shard_xattn_t2i", "rewrite:evaluation.shard_xattn_i2t"):
        assert name in scan, name
    table = format_table(result)
    for repo, names in shims.items(): assert f"shims {repo}: {', '.join(names)}" in table


def test_repository_modules_do_not_stay_imported(result):
    for name in ("model", "evaluation", "loss", "lib", "lib.vse", "standin_uninstalled_cnn_models"):
        mod = sys.modules.get(name)
        assert mod is None or STANDIN not in Path(getattr(mod, "__file__", "") or "/").parents, name


def test_missing_checkout_is_a_clear_error(tmp_path, capsys):
    shutil.copytree(STANDIN / "SGRAF", tmp_path / "SGRAF")
    with pytest.raises(SystemExit) as e:
        main(["--code", str(tmp_path), "--size", "small", "--heads", "sgr,ave"])
    test_eq(e.value.code, 2)
    err = capsys.readouterr().err
    assert "has no DBL checkout (needed by ave)" in err and "git clone -b main https://github.com/Paranioar/DBL" in err
    assert "or leave ave out of --heads" in err


def test_wrong_branch_and_wrong_folder_are_clear_errors(tmp_path):
    shutil.copytree(STANDIN / "SGRAF", tmp_path / "SGRAF")
    (tmp_path / "SGRAF" / ".git").mkdir()
    (tmp_path / "SGRAF" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    test_fail(lambda: bench_published(tmp_path, ("saf",), "small"), contains="on branch 'main'")
    test_fail(lambda: bench_published(tmp_path, ("saf",), "small"), contains="git -C")
    (tmp_path / "SCAN").mkdir()
    test_fail(lambda: find_repo(tmp_path, "SCAN", ("scan_t2i",)), contains="it has no model.py")
    test_fail(lambda: bench_published(tmp_path, ("sgr", "nope"), "small"), contains="not a published head")


def test_a_changed_checkout_is_not_patched_blindly(tmp_path):
    shutil.copytree(STANDIN / "SCAN", tmp_path / "SCAN")
    src = (tmp_path / "SCAN" / "model.py").read_text().replace("loss.data[0]", "float(loss)")
    (tmp_path / "SCAN" / "model.py").write_text(src)
    r = bench_published(tmp_path, ("scan_t2i",), "small", batch=4, rounds=1)
    err = r["heads"]["scan_t2i"]["error"]
    assert "no longer contains 'loss.data[0]'" in err, err
    assert "did not run" in format_table(r) and json.loads(summary_json(r))["scan_t2i"]["error"] == err


def test_module_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dbl_kit.bench_published", "--code", str(STANDIN), "--size", "small",
                          "--heads", "saf", "--batch", "4", "--rounds", "1", "--threads", "1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    test_eq(json.loads(lines[-1])["saf"]["agree"], True)
    assert lines[-2] == "shims SGRAF: cuda->cpu"

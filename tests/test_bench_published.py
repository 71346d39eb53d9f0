"""`python -m dbl_kit.bench_published`: the kit against published code imported from the user's checkouts. The
repository carries none of that code, so these tests check what needs no checkout: missing, wrong-branch and
incomplete checkouts are clear errors; a rewrite shim refuses a source that changed; the table and the JSON line agree
on a hand-written result; the module runs as a command. The side-by-side run itself is measured with the real
checkouts (README, Speed). No timing is asserted."""
import json, subprocess, sys, types
from pathlib import Path

import pytest
from fastcore.test import test_eq, test_fail

from dbl_kit.bench_published import Shims, bench_published, find_repo, format_table, main, rewrite, summary_json
from dbl_kit.core import KitError


def _empty_checkout(root: Path, name: str, files, branch=None) -> Path:
    "A folder laid out like a checkout: the named files exist, empty; `.git/HEAD` names `branch` when given."
    path = root / name
    for f in files:
        (path / f).parent.mkdir(parents=True, exist_ok=True); (path / f).write_text("")
    if branch:
        (path / ".git").mkdir(); (path / ".git" / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    return path


def test_missing_checkout_is_a_clear_error(tmp_path, capsys):
    _empty_checkout(tmp_path, "SGRAF", ("model.py", "evaluation.py"))
    with pytest.raises(SystemExit) as e:
        main(["--code", str(tmp_path), "--size", "small", "--heads", "sgr,ave"])
    test_eq(e.value.code, 2)
    err = capsys.readouterr().err
    assert "has no DBL checkout (needed by ave)" in err and "git clone -b main https://github.com/Paranioar/DBL" in err
    assert "or leave ave out of --heads" in err


def test_wrong_branch_and_wrong_folder_are_clear_errors(tmp_path):
    _empty_checkout(tmp_path, "SGRAF", ("model.py", "evaluation.py"), branch="main")
    test_fail(lambda: bench_published(tmp_path, ("saf",), "small"), contains="on branch 'main'")
    test_fail(lambda: bench_published(tmp_path, ("saf",), "small"), contains="git -C")
    (tmp_path / "SCAN").mkdir()
    test_fail(lambda: find_repo(tmp_path, "SCAN", ("scan_t2i",)), contains="it has no model.py")
    test_fail(lambda: bench_published(tmp_path, ("sgr", "nope"), "small"), contains="not a published head")


def test_a_changed_source_is_not_patched_blindly(tmp_path):
    "A rewrite shim applies its edit to the function's own source, and refuses a source without the expected text."
    (tmp_path / "toy_checkout_module.py").write_text("def halves(n):\n    return n / 2 + 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import toy_checkout_module as m
        shims = Shims()
        test_fail(lambda: rewrite(m, "halves", [("n / 3", "n // 3")], shims, "SCAN"), contains="no longer contains 'n / 3'")
        test_eq(shims.of("SCAN"), [])                            # refused: nothing applied
        rewrite(m, "halves", [("n / 2", "n // 2")], shims, "SCAN")
        test_eq(m.halves(7), 4)                                  # 7 // 2 + 1, where the original gave 4.5
        test_eq(shims.of("SCAN"), ["rewrite:toy_checkout_module.halves (n / 2 -> n // 2)"])
    finally:
        sys.path.remove(str(tmp_path)); sys.modules.pop("toy_checkout_module", None)


def _result():
    "A result as `bench_published` returns it, written by hand: one head measured, one that did not run."
    ok = {"step_s": {"published": 2.0, "kit": 1.25}, "step_ratio": 1.6, "eval_pairs_s": {"published": 1000.0, "kit": 4321.0},
          "eval_ratio": 4.321, "encode_ratio": 0.98765, "agree": True, "loss_rel": 1e-7, "losses": [1.0, 0.9],
          "sims_max_abs": 2e-6, "encode_max_abs": 1e-5}
    return {"code": "/code", "size": "small", "batch": 4, "threads": 1, "cpus": 2, "torch": "2.x", "rounds": 2,
            "load_1min": [0.5, 0.7], "dims": {"regions": 36, "feat_dim": 32, "embed_size": 16, "word_dim": 8, "sim_dim": 8},
            "heads": {"sgr": ok, "saf": {"error": "SGRAF: model.SGRAF failed"}}, "shims": {"SGRAF": ["cuda->cpu"]}}


def test_table_and_json_line_agree_on_a_written_result():
    r = _result()
    table, line = format_table(r).splitlines(), json.loads(summary_json(r))
    row = next(l for l in table if l.startswith("sgr "))
    test_eq(row.split()[1:4], ["2", "1.25", "1.60"])
    test_eq(line["sgr"], {"step_ratio": 1.6, "eval_ratio": 4.321, "encode_ratio": 0.988, "agree": True})
    test_eq(line["saf"], {"error": "SGRAF: model.SGRAF failed"})
    assert "saf       did not run: SGRAF: model.SGRAF failed" in table and table[-1] == "shims SGRAF: cuda->cpu"


def test_module_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dbl_kit.bench_published", "--code", str(tmp_path), "--size", "small",
                          "--heads", "saf"], capture_output=True, text=True, cwd=tmp_path)
    test_eq(out.returncode, 2)
    assert out.stderr.startswith(f"error: --code {tmp_path} has no SGRAF checkout (needed by saf)"), out.stderr

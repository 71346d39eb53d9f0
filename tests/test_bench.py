"""The benchmarks' command lines: each prints its table and, last, one JSON line that agrees with the table (no timing
asserted); `metrics` and `similarity` check the kit against tests/reference.py first, and say so when it is missing."""
import json, math
from pathlib import Path

import pytest
import torch
from fastcore.test import test_eq, test_close

import dbl_kit.bench as bench
from dbl_kit.bench import main

REFERENCE = Path(__file__).with_name("reference.py")


def test_overhead_command_prints_ratios(capsys, shapes_data_path, monkeypatch):
    monkeypatch.setenv("DBL_DATA_PATH", shapes_data_path)
    main(["overhead", "--steps", "1", "--rounds", "1", "--batch-size", "32", "--device", "cpu", "--threads", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    ratios = json.loads(out[-1])
    test_eq(set(ratios), {"offline_cached", "offline_uncached", "momentum", "online_2", "online_3"})
    rows = {line.split()[0]: line.split() for line in out[2:8]}
    test_eq(rows["baseline"][2], "1.00")
    ms = {k: float(v[1]) for k, v in rows.items()}
    for name, ratio in ratios.items():   # the JSON ratio is the table's step time over the baseline's
        test_close(ratio, ms[name] / ms["baseline"], eps=0.02 * ratio + 0.01)
    assert "1 threads" in out[0] and "of vse" in out[0]


@pytest.mark.numeric
def test_metrics_command_agrees_with_its_reference(capsys):
    main(["metrics", "--images", "150", "--repeats", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert "(both agree)" in out[0] and out[0].startswith("similarity matrix 150 x 750")
    assert str(REFERENCE) in out[2]                       # the loop timed is the tests' reference
    vec, loop = (float(line.split(":")[1].split()[0]) for line in out[1:3])
    test_close(json.loads(out[-1])["speedup"], loop / vec, eps=0.05 * loop / vec + 0.05)


@pytest.mark.numeric
def test_similarity_command_agrees_with_the_published_loop(capsys):
    main(["similarity", "--images", "4", "--captions", "3", "--regions", "3", "--words", "4", "--embed-size", "16",
          "--sim-dim", "8", "--rounds", "1", "--heads", "scan_i2t,sgr", "--reference", str(REFERENCE)])
    out = capsys.readouterr().out.strip().splitlines()
    assert f"engine and loop ({REFERENCE}) agree within 1e-4" in out[0]
    last = json.loads(out[-1])
    assert set(last) == {"gemm_gflops", "scan_i2t", "sgr"} and last["sgr"]["speedup"] > 0


def test_without_the_reference_the_commands_say_so(capsys, tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as stop:
        main(["metrics", "--images", "10", "--reference", str(tmp_path / "none.py")])
    test_eq(stop.value.code, 2)
    test_eq(capsys.readouterr().err.strip(), f"error: --reference {tmp_path / 'none.py'} is not a file; pass the path of "
                                             "tests/reference.py in a dbl-kit checkout.")
    # an installed package outside a checkout: neither the current folder nor the package's parent holds the file
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "REFERENCE", Path("tests") / "no_such_reference.py")
    with pytest.raises(SystemExit):
        main(["similarity", "--images", "2", "--captions", "2", "--heads", "ave"])
    err = capsys.readouterr().err.strip().splitlines()
    test_eq(len(err), 1)
    assert "ship with the dbl-kit repository, not the installed package" in err[0] and "--reference PATH" in err[0]


# `python -m dbl_kit.bench gpu`: the tiny plan on the CPU, as CI runs it (the published plan needs a GPU)
TINY = ["gpu", "--device", "cpu", "--tiny", "--steps", "1", "--warmup", "0", "--threads", "1"]


def _gpu_run(capsys, *extra):
    main(TINY + list(extra))
    out = capsys.readouterr().out.strip().splitlines()
    return out[:-1], json.loads(out[-1])


def test_gpu_command_table_agrees_with_its_json_line(capsys):
    table, r = _gpu_run(capsys)
    assert table[0].startswith(f"GPU check on cpu ({bench._cpu_name()})") and "size tiny: batch 8, 8 regions x 16-d, embed 32" in table[0]
    assert "dbl_kit.trainer.train_step on a Baseline scenario" in table[1] and r["step"] in table[1]
    top = table.index(next(line for line in table if line.startswith("model ")))
    test_eq([t["model"] for t in r["train"]], bench.kit_backbones())       # every backbone of the registry
    for t, line in zip(r["train"], table[top + 1:]):
        name, fp32, bf16, ratio, loss_rel, grad_rel, worst, global_rel, flips, mb32, mb16 = line.split()
        test_eq((name, worst, int(flips)), (t["model"], t["worst_tensor"], t["flips"]))
        test_close(float(fp32), t["fp32_ms"], eps=0.051); test_close(float(bf16), t["bf16_ms"], eps=0.051)
        test_close(float(ratio), t["ratio"], eps=6e-4)
        for shown, value in ((loss_rel, t["loss_rel"]), (grad_rel, t["grad_rel"]), (global_rel, t["grad_rel_global"])):
            test_close(float(shown), value, eps=0.006 * value + 1e-12)     # 3 significant digits
        # bf16 against float32 on the same weights and batch: finite and small (generous: a hardest negative may flip)
        assert all(math.isfinite(v) for v in (t["loss_rel"], t["grad_rel"], t["grad_rel_global"])), t
        assert t["loss_rel"] < 0.05 and t["grad_rel_global"] < 1.0, t
    evals = [line.split() for line in table if line.split()[1:2] and line.split()[1] in ("20x100", "40x200")]
    test_eq(len(evals), len(r["eval"]))
    test_eq({e["head"] for e in r["eval"]}, {"scan_t2i", "ave", "sgr", "saf"})   # the interaction heads but scan_i2t
    for e, row in zip(r["eval"], evals):
        test_eq(row[:5], [e["head"], e["set"], str(e["images"]), str(e["captions"]), e["precision"]])
        test_close(float(row[6]), e["pairs_s"], eps=0.51)
        if e["precision"] == "fp32": assert 0 <= e["max_abs_diff"] < 0.1 and float(row[8]) == pytest.approx(e["max_abs_diff"], rel=0.006)
    test_eq(table[-2], "DDP: " + r["ddp"]["skipped"])
    assert table[-1].startswith("total ") and table[-1].endswith("of the 480 s budget")


def test_gpu_command_writes_its_result_atomically(capsys, tmp_path):
    out = tmp_path / "results" / "gpu_tiny.json"
    out.parent.mkdir()
    _, r = _gpu_run(capsys, "--models", "vse", "--heads", "ave", "--out", str(out))
    test_eq(json.loads(out.read_text()), r)
    test_eq([p.name for p in out.parent.iterdir()], ["gpu_tiny.json"])     # no temporary file left behind
    test_eq(([t["model"] for t in r["train"]], {e["head"] for e in r["eval"]}), (["vse"], {"ave"}))


def test_gpu_command_skips_what_the_budget_cannot_hold(capsys):
    table, r = _gpu_run(capsys, "--models", "vse,sgr", "--heads", "sgr", "--budget-s", "0.001")
    # the first step check has no slower one to project from; after it, nothing fits
    assert "skipped" in r["train"][1] and all("budget" in e["skipped"] for e in r["eval"])
    test_eq(sum("skipped: " in line for line in table), sum("skipped" in x for x in r["train"] + r["eval"]))


def test_gpu_command_without_a_gpu_says_how_to_run_on_the_cpu(capsys):
    if torch.cuda.is_available(): pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as stop:
        main(["gpu", "--tiny"])
    test_eq(stop.value.code, 2)
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: python -m dbl_kit.bench gpu --device cuda needs a CUDA GPU and this machine has none")
    assert "--device cpu --tiny" in err
    with pytest.raises(SystemExit):
        main(["gpu", "--device", "cpu", "--size", "huge"])                # argparse: not a preset
    assert "invalid choice: 'huge'" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_command_ddp_step_in_two_processes(capsys):
    table, r = _gpu_run(capsys, "--models", "vse,sgr", "--heads", "sgr", "--ddp", "2")
    test_eq((r["ddp"]["procs"], sorted(r["ddp"]["models"])), (2, ["sgr", "vse"]))
    assert table[-2].startswith("DDP: 2 processes, vse ") and all(math.isfinite(m["loss"]) for m in r["ddp"]["models"].values())


def test_published_subcommand_is_wired(capsys, tmp_path):
    "`bench published` is the published-code bench: an empty --code folder is answered with the clone command, exit 2."
    with pytest.raises(SystemExit) as stop:
        main(["published", "--code", str(tmp_path), "--size", "small", "--heads", "scan_t2i"])
    test_eq(stop.value.code, 2)
    err = capsys.readouterr().err
    assert err.startswith(f"error: --code {tmp_path} has no SCAN checkout") and "git clone" in err, err

"""The benchmarks' command lines: each prints its table and, last, one JSON line that agrees with the table (no timing
asserted); `metrics` and `similarity` check the kit against tests/reference.py first, and say so when it is missing."""
import json
from pathlib import Path

import pytest
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

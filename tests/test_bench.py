"The benchmarks' command lines: each prints its table and, last, one JSON line that agrees with the table (no timing asserted)."
import json

from fastcore.test import test_eq, test_close

from dbl_kit.bench import main


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


def test_metrics_command_agrees_with_its_reference(capsys):
    main(["metrics", "--images", "150", "--repeats", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert "(both agree)" in out[0] and out[0].startswith("similarity matrix 150 x 750")
    vec, loop = (float(line.split(":")[1].split()[0]) for line in out[1:3])
    test_close(json.loads(out[-1])["speedup"], loop / vec, eps=0.05 * loop / vec + 0.05)

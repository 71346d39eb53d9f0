"The overhead benchmark's command line runs and prints its table and a JSON line of ratios (no timing asserted)."
import json

from dbl_kit.bench import main


def test_overhead_command_prints_ratios(capsys, shapes_data_path, monkeypatch):
    monkeypatch.setenv("DBL_DATA_PATH", shapes_data_path)
    main(["overhead", "--steps", "1", "--rounds", "1", "--batch-size", "32", "--device", "cpu"])
    out = capsys.readouterr().out.strip().splitlines()
    ratios = json.loads(out[-1])
    assert set(ratios) == {"offline_cached", "offline_uncached", "momentum", "online_2", "online_3"}
    assert all(r > 0 for r in ratios.values())
    assert any(line.startswith("baseline") for line in out)

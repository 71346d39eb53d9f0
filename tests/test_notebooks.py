"Papermill runs of the runnable notebooks with small parameters, as a user runs them headless."
import json
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"


def _run(nb, out, cwd, **params):
    return pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(cwd), progress_bar=False,
                               kernel_name="python3")


def _outputs_text(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            out.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) + o.get("evalue", ""))
    return "\n".join(out)


SMALL = dict(epochs=1, max_train_captions=640, embed_size=64, word_dim=64, progress=False)


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory, shapes_data_path):
    "A slice of shapes (130 training images, 100 dev, 100 test): the sweeps' many runs evaluate in a blink."
    from dbl_kit.data import resolve_dataset
    from test_bad_inputs import slice_shapes
    return str(slice_shapes(resolve_dataset("shapes", shapes_data_path), tmp_path_factory.mktemp("tiny") / "tiny_precomp",
                            sizes={"train": 130, "dev": 100, "test": 100}))


@pytest.mark.parametrize("scenario", ["baseline", "offline", "online", "momentum"])
def test_train_notebook_each_scenario(tmp_path, scenario, tiny_shapes):
    out = tmp_path / "out.ipynb"
    _run(NBS / "train.ipynb", out, NBS, scenario=scenario, dataset=tiny_shapes, runs_path=str(tmp_path / "runs"), **SMALL)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    n = {"baseline": 1, "offline": 2, "online": 2, "momentum": 2}[scenario]
    assert len(metrics["branches"]) == n
    assert "rsum" in _outputs_text(out)          # the metrics table was shown


def test_train_notebook_missing_coco_fails_fast(tmp_path):
    out = tmp_path / "out.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as e:
        _run(NBS / "train.ipynb", out, NBS, dataset="coco", data_path=str(tmp_path), runs_path=str(tmp_path / "runs"))
    assert e.value.ename == "KitError"
    assert str(tmp_path / "coco_precomp") in e.value.evalue and "train_ims.npy" in e.value.evalue
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("param,value,needle", [
    ("epochs", 0, "epochs=0"), ("model", "resnet", "model='resnet'"), ("dataset", "nosuch", "nosuch"),
    ("epoch", 3, "Did you mean 'epochs'"),
])
def test_train_notebook_bad_parameter_stops_with_kit_error(tmp_path, param, value, needle):
    with pytest.raises(pm.PapermillExecutionError) as e:
        _run(NBS / "train.ipynb", tmp_path / "out.ipynb", NBS, runs_path=str(tmp_path / "runs"), **{param: value})
    assert e.value.ename == "KitError" and needle in e.value.evalue
    assert not (tmp_path / "runs").exists()


def test_experiment_notebook_small(tmp_path, tiny_shapes):
    out, csv = tmp_path / "exp.ipynb", tmp_path / "results.csv"
    _run(NBS / "experiments" / "dbl_vs_baseline.ipynb", out, NBS / "experiments", epochs=1, seeds="0", dataset=tiny_shapes,
         transfers="rel_max", max_train_captions=512, runs_path=str(tmp_path / "runs"), results_csv=str(csv),
         sweep="offline:beta:0.5")
    import pandas as pd
    df = pd.read_csv(csv)
    assert set(df.setting) == {"baseline", "offline, alpha=0 (control)", "offline rel_max", "online rel_max", "momentum rel_max",
                               "offline rel_max beta=0.5"}
    assert not any(Path(d).is_absolute() for d in df.run_dir)     # relative to the runs folder: no machine's paths
    swept_dir = tmp_path / "runs" / df.set_index("setting").loc["offline rel_max beta=0.5", "run_dir"]
    swept = json.loads((swept_dir / "config.json").read_text())
    assert swept["beta"] == 0.5 and swept["alpha"] == 1.0 and swept["scenario"] == "offline"
    # run again with the same parameters: every run is reused from the CSV, none is trained twice
    _run(NBS / "experiments" / "dbl_vs_baseline.ipynb", out, NBS / "experiments", epochs=1, seeds="0", dataset=tiny_shapes,
         transfers="rel_max", max_train_captions=512, runs_path=str(tmp_path / "runs"), results_csv=str(csv),
         sweep="offline:beta:0.5")
    assert len(pd.read_csv(csv)) == 6 and len(list((tmp_path / "runs").iterdir())) == 6
    assert {"scenario", "transfer", "adaptation", "seed", "branch", "rsum", "i2t_r1", "t2i_r10"} <= set(df.columns)
    assert "Baseline: test rSum" in _outputs_text(out)


def _reloaded_rsum(run_path):
    "The test rSum of the run's model as `load_model` gives it back, evaluated again on the run's own data."
    import torch
    import dbl_kit
    from dbl_kit.config import make_config
    from dbl_kit.trainer import RunContext, evaluate, prepare_data
    run = dbl_kit.RunDir(run_path)
    reloaded, info = dbl_kit.load_model(run.path)
    assert info["model"]["model"] == run.config["model"]
    cfg = make_config(**{k: v for k, v in run.config.items() if k in dbl_kit.PARAMS})
    folder, splits = prepare_data(cfg)
    return evaluate(reloaded, splits["test"], RunContext(cfg, torch.device("cpu"), splits, run.vocab(), run, folder)).main["rsum"]


def test_train_notebook_coco_format_and_reload(tmp_path):
    "`papermill nbs/train.ipynb -p dataset coco -p model sgr` on a COCO-layout folder; `load_model` reproduces its test rSum."
    import dbl_kit
    from test_train import _tiny_precomp
    _tiny_precomp(tmp_path / "data" / "coco_precomp", regions=12, dim=64)
    _run(NBS / "train.ipynb", tmp_path / "out.ipynb", NBS, dataset="coco", data_path=str(tmp_path / "data"), model="sgr",
         runs_path=str(tmp_path / "runs"), batch_size=16, epochs=1, embed_size=16, word_dim=16, sim_dim=16, progress=False,
         threads=1)
    run = dbl_kit.RunDir(next((tmp_path / "runs").iterdir()))
    assert run.path.name.startswith("coco-baseline") and run.config["model"] == "sgr"
    assert _reloaded_rsum(run.path) == run.metrics["branches"][run.target]["rsum"]
    assert "rsum" in _outputs_text(tmp_path / "out.ipynb")


@pytest.mark.parametrize("model", ["vse", "scan_t2i", "scan_i2t", "ave", "sgr", "saf"])
def test_every_backbone_trains_and_reloads(tmp_path, model):
    "A 1-epoch run of every backbone (what the notebook calls, in this process); `load_model` reproduces its test rSum."
    import dbl_kit
    from test_train import _tiny_precomp
    _tiny_precomp(tmp_path / "data" / "coco_precomp", regions=12, dim=64)
    r = dbl_kit.train(dataset="coco", data_path=str(tmp_path / "data"), model=model, runs_path=str(tmp_path / "runs"),
                      batch_size=16, epochs=1, embed_size=16, word_dim=16, sim_dim=16, progress=False, threads=1)
    run = dbl_kit.RunDir(r.run_dir)
    assert run.config["model"] == model
    reloaded, _ = dbl_kit.load_model(run.path)
    assert (type(reloaded).__name__ == "VSEModel") == (model == "vse")
    assert _reloaded_rsum(run.path) == run.metrics["branches"][run.target]["rsum"]


def test_tuned_strategies_notebook_small(tmp_path, tiny_shapes):
    "The 'finding 2, finished' sweep end to end on tiny grids (in this process: workers=0): choice on dev, widening, chosen configs on every seed, defer, resume."
    import pandas as pd
    out, csv, runs = tmp_path / "tuned.ipynb", tmp_path / "tuned.csv", tmp_path / "runs"
    params = dict(dataset=tiny_shapes, seeds="0,1", select_seeds=1, control_configs="hardest,sum", offline_grids="rel_max:1 3",
                  momentum_grids="dino:1 3", widen=1, defer="dino", new_runs=True, epochs=1, max_train_captions=320, workers=0,
                  model_params="embed_size:32,word_dim:32", runs_path=str(runs), results_csv=str(csv))
    _run(NBS / "experiments" / "tuned_strategies.ipynb", out, NBS / "experiments", **params)
    df = pd.read_csv(csv, dtype={"config": str})
    assert df.run_dir.is_unique and not any(Path(d).is_absolute() for d in df.run_dir)
    assert sorted(df[df.arm == "baseline"].seed) == [0, 1]
    for group, arm in (("offline", "rel_max"), ("momentum", "dino")):
        mine = df[(df.group == group) & (df.arm == arm)]
        first = mine[mine.seed == 0].set_index("alpha").dev_rsum.sort_index()   # ties go to the smaller weight, as in the notebook
        assert len(first) == 3 and {1.0, 3.0} < set(first.index), (arm, first)   # a 2-value grid has its best on an edge: widened once
        extra = (set(first.index) - {1.0, 3.0}).pop()
        assert (extra < 1) == (first[1.0] >= first[3.0]), (arm, first)         # on the side of the better dev value
        chosen = first.idxmax()                                                  # one selection seed: its best dev value
        assert set(mine[mine.seed == 1].alpha) == {chosen}, (arm, chosen, mine)  # only the chosen weight ran on seed 1
    ctl = df[df.arm == "control"]
    best = ctl[ctl.seed == 0].set_index("config").dev_rsum.idxmax()
    assert set(ctl[ctl.seed == 0].config) == {"hardest", "sum"} and set(ctl[ctl.seed == 1].config) == {best}
    assert ctl.set_index("config").max_violation.to_dict()[best] == (best == "hardest")
    order = list(df.run_dir)                                 # rows are written as runs finish
    late = [order.index(n) for n in df[(df.arm == "dino") & ((df.seed == 1) | ~df.alpha.isin([1.0, 3.0]))].run_dir]
    assert min(late) > max(order.index(n) for n in df[df.arm != "dino"].run_dir)   # the deferred arm's new runs came last
    cfg = json.loads((runs / "offline-rel_max-a3-s0" / "config.json").read_text())
    assert cfg["alpha"] == 3.0 and cfg["transfer"] == "rel_max" and cfg["embed_size"] == 32 and cfg["scenario"] == "offline"
    n_runs = len(list(runs.iterdir()))
    _run(NBS / "experiments" / "tuned_strategies.ipynb", out, NBS / "experiments", **params)   # again: everything is read back
    assert len(pd.read_csv(csv)) == len(df) and len(list(runs.iterdir())) == n_runs
    text = _outputs_text(out)
    assert "every configuration tried" in text and "- control (" in text and "- baseline" in text and "- DBL" in text


@pytest.mark.parametrize("name", ["alpha_sweep", "anchor_convergence", "tuned_strategies"])
def test_experiment_renders_from_its_committed_csv(tmp_path, name):
    "Each experiment notebook renders its tables from the committed CSV alone (no run directory, nothing trained)."
    import pandas as pd
    csv = NBS / "experiments" / "results" / f"{name}.csv"
    out = tmp_path / f"{name}.ipynb"
    _run(NBS / "experiments" / f"{name}.ipynb", out, NBS / "experiments", new_runs=False,
         runs_path=str(tmp_path / "runs"), results_csv=str(csv))
    df = pd.read_csv(csv)
    text = _outputs_text(out)
    assert f"{len(df)} runs in" in text and not (tmp_path / "runs").exists()
    assert "Error" not in text and "Traceback" not in text
    if name == "alpha_sweep": assert "control (alpha=0): test rSum 246.2" in text and "DBL's best: rel_max (alpha=0.3)" in text
    if name == "anchor_convergence": assert "DBL - control" in text and "slope per doubling" in text
    if name == "tuned_strategies": assert "- control (" in text and "- DBL" in text

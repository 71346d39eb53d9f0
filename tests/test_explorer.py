"dbl_kit.explorer driven as a user drives its controls, and nbs/explore.ipynb run headless."
import html, json
from pathlib import Path

import numpy as np
import pytest
from fastcore.test import test_eq

from dbl_kit.analysis import run_stats

from fake_run import make_fake_run

ROOT = Path(__file__).resolve().parents[1]
PLOTLY = "application/vnd.plotly.v1+json"


@pytest.fixture()
def run_dir(tmp_path):
    return make_fake_run(tmp_path / "runs" / "fake")


@pytest.fixture()
def Explorer():
    pytest.importorskip("ipywidgets")
    from dbl_kit.explorer import Explorer
    return Explorer


def shown(ex, name):
    "What output `name` shows: its plotly figure (as sent to the page) or its HTML."
    data = ex.out[name].outputs[0]["data"]
    return data.get(PLOTLY) or data["text/html"]


def test_explorer_reacts_to_controls(run_dir, Explorer):
    ex = Explorer(run_dir, umap_images=0)
    test_eq((ex.margin.value, ex.branch_a.value, ex.branch_b.value), (0.2, "anchor", "target"))
    assert "finished: test rSum 270.0 (target)" in ex.status.value
    ex.margin.value = 0.4
    test_eq(ex.figures["separability"].layout.meta["margin"], 0.4)
    test_eq(ex.figures["scatter"].layout.meta["margin"], 0.4)
    test_eq(shown(ex, "scatter")["layout"]["meta"]["margin"], 0.4)
    # one branch left: the comparison gives way to a hint, the other figures draw the target alone
    ex.branch_a.label = "(none)"
    test_eq((ex.branch_a.index, ex.branch_a.label, ex.branch_a.value), (0, "(none)", ""))   # shown, not an empty box
    assert "Choose two different branches" in shown(ex, "scatter")
    assert "scatter" not in ex.figures
    test_eq([t["name"] for t in shown(ex, "separability")["data"]], ["target"])
    test_eq({t.name for t in ex.figures["distances"].data}, {"target"})
    ex.branch_a.value = "anchor"
    test_eq(shown(ex, "scatter")["layout"]["meta"]["margin"], 0.4)
    test_eq([t["name"] for t in shown(ex, "separability")["data"]], ["anchor", "target"])
    # the inspector follows order and direction
    ex.direction.value = "t2i"
    assert "caption query" in ex.inspector.value
    ex.order.value = "gain"                         # the slider's first position: the query B gains most on
    sa, sb = (run_stats(run_dir, b, "dev", "t2i").relative.to_numpy() for b in ("anchor", "target"))
    test_eq(ex.query.description, f"query {int(np.argmax(sb - sa))}")
    assert f"caption query:</b> caption {int(np.argmax(sb - sa))}<" in ex.inspector.value
    # the slider shows no position of its own: its label is the query's number, the inspector says where it stands
    ex.query.value = 3
    q = int(np.argsort(-(sb - sa), kind="stable")[3])
    test_eq((ex.query.readout, ex.query.description), (False, f"query {q}"))
    assert f"query {q}: 4 of {len(sa)} by " in ex.inspector.value


def test_run_dir_typed_as_the_placeholder_says(run_dir, Explorer, tmp_path, monkeypatch):
    "runs/<run_name> opens the run from the configured runs folder, whatever the working folder (nbs/ has no runs/)."
    ex = Explorer(umap_images=0)
    test_eq(ex.run_dir.placeholder, "runs/<run_name>")
    monkeypatch.setenv("DBL_RUNS_PATH", str(run_dir.parent))
    (tmp_path / "nbs").mkdir(); monkeypatch.chdir(tmp_path / "nbs")
    ex.run_dir.value = f"runs/{run_dir.name}"
    test_eq(ex.run.path, run_dir.resolve())
    assert "finished" in ex.status.value
    ex.run_dir.value = "runs/no-such-run"
    assert ex.run is None and "nor in the runs folder" in html.unescape(ex.status.value)


def test_bad_folder_clears_the_explorer(run_dir, Explorer):
    ex = Explorer(run_dir, umap_images=0)
    assert ex.figures
    ex.load(run_dir.parent)
    assert "folder of runs" in ex.status.value
    test_eq((ex.run, ex.figures, ex.inspector.value), (None, {}, ""))
    test_eq([o.outputs for o in ex.out.values()], [()] * len(ex.out))
    test_eq(ex.run_dir.value, str(run_dir.parent))
    # the text box loads a run again
    ex.run_dir.value = str(run_dir)
    test_eq(sorted(ex.figures), ["distances", "history", "scatter", "separability"])
    test_eq(ex.run.path, run_dir.resolve())


def test_unfinished_run_shows_its_history(tmp_path, Explorer):
    run_dir = make_fake_run(tmp_path / "runs" / "open", finished=False)
    ex = Explorer(run_dir, umap_images=10)
    assert "not finished: last evaluation target epoch 1 of 2" in html.unescape(ex.status.value)
    assert "only the training curves" in ex.status.value
    test_eq(list(ex.figures), ["history", "umap"])
    test_eq([list(t.x) for t in ex.figures["history"].data if t.name == "target" and t.xaxis == "x"], [[3.0]])
    assert "not finished" in ex.figures["umap"].layout.meta["reason"]
    for name in ("distances", "separability", "scatter"):
        assert "not finished" in shown(ex, name), name
    test_eq((ex.margin.disabled, ex.split.disabled, ex.branch_b.disabled), (True, True, False))
    # a finished run afterwards enables the controls again
    ex.load(make_fake_run(tmp_path / "runs" / "done"))
    test_eq((ex.margin.disabled, sorted(ex.figures)), (False, ["distances", "history", "scatter", "separability", "umap"]))


def test_explore_notebook_has_a_parameters_cell():
    "papermill -p needs the cell tag; `nbdev-clean` drops cell tags unless [tool.nbdev] allows them."
    nb = json.loads((ROOT / "nbs" / "explore.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "run_dir = None" in "".join(tagged[0]["source"]), \
        "nbs/explore.ipynb lost its 'parameters' cell tag (nbdev-clean?): papermill would ignore -p run_dir"


def test_explore_notebook_hides_its_setup():
    "The setup cell (imports, training a demo run) is hidden from the docs; no module imports dbl_kit.viz any more."
    nb = json.loads((ROOT / "nbs" / "explore.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    setup = next(s for s in code if "import" in s and "open_run" in s)
    assert setup.startswith("#| hide"), setup[:80]
    assert not any("dbl_kit.viz" in s for s in code)


@pytest.mark.slow
def test_explore_notebook_headless(run_dir, tmp_path):
    "papermill runs nbs/explore.ipynb on a run directory and every figure lands in the saved notebook."
    pm = pytest.importorskip("papermill")
    out = tmp_path / "explore-out.ipynb"
    pm.execute_notebook(str(ROOT / "nbs" / "explore.ipynb"), str(out), cwd=str(tmp_path), progress_bar=False,
                        kernel_name="python3", parameters=dict(run_dir=str(run_dir), umap_images=15,
                                                               figures_dir=str(tmp_path / "figures")))
    test_eq(sorted(p.stem for p in (tmp_path / "figures").glob("*.html")),
            ["distances", "history", "scatter", "separability", "umap"])
    nb = json.loads(out.read_text())
    titles = [o["data"][PLOTLY]["layout"]["title"]["text"]
              for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if PLOTLY in o.get("data", {})]
    for start in ("Distance distributions", "Triplet separability", "Per-query relative distance", "Training curves", "UMAP"):
        assert any(t.startswith(start) for t in titles), (start, titles)
    table = next(o["data"]["text/html"] for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                 if "hardest_negative" in "".join(o.get("data", {}).get("text/html", "")))
    assert "relative&gt;0.2 (%)" in "".join(table) and "R@1 (%)" in "".join(table)     # one unit for both shares


@pytest.mark.slow
def test_explore_notebook_headless_on_an_unfinished_run(tmp_path):
    "A run still training: the notebook runs through, showing its training curves and its status."
    pm = pytest.importorskip("papermill")
    run_dir = make_fake_run(tmp_path / "runs" / "open", finished=False)
    out = tmp_path / "explore-out.ipynb"
    pm.execute_notebook(str(ROOT / "nbs" / "explore.ipynb"), str(out), cwd=str(tmp_path), progress_bar=False,
                        kernel_name="python3", parameters=dict(run_dir=str(run_dir), umap_images=0))
    text = out.read_text()
    assert "not finished: last evaluation target epoch 1 of 2" in text and "Training curves" in text

"dbl_kit.viz against brute-force references: triplet statistics, figure numbers, run-directory errors, explore notebook."
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dbl_kit.core import KitError
from dbl_kit import viz
from fake_run import make_fake_run

ROOT = Path(__file__).resolve().parents[1]


def loop_stats(sims, k):
    "Per-query statistics with plain Python loops: the independent reference."
    sims = np.asarray(sims, dtype=np.float64)
    n_img, n_cap = sims.shape
    out = {"i2t": [], "t2i": []}
    for i in range(n_img):
        pos = max(sims[i, j] for j in range(n_cap) if j // k == i)
        negs = [sims[i, j] for j in range(n_cap) if j // k != i]
        out["i2t"].append((pos, max(negs), pos - max(negs), 1 + sum(v >= pos for v in negs)))
    for j in range(n_cap):
        pos = sims[j // k, j]
        negs = [sims[i, j] for i in range(n_img) if i != j // k]
        out["t2i"].append((pos, max(negs), pos - max(negs), 1 + sum(v >= pos for v in negs)))
    return out


def check_against_loop(df, sims, k, atol=1e-6):
    ref = loop_stats(sims, k)
    for d in ("i2t", "t2i"):
        part = df[df.direction == d]
        expect = np.array(ref[d])
        assert part["query"].tolist() == list(range(len(expect)))
        np.testing.assert_allclose(part[["positive", "hardest_negative", "relative"]].to_numpy(), expect[:, :3], atol=atol)
        assert part["rank"].tolist() == expect[:, 3].astype(int).tolist()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_images", [2, 7, 13])
def test_triplet_stats_matches_loop(seed, n_images):
    rng = np.random.default_rng(seed)
    sims = rng.uniform(-1, 1, size=(n_images, 5 * n_images)).astype(np.float32)
    check_against_loop(viz.triplet_stats(sims, 5), sims, 5)
    # small blocks exercise the block boundaries
    check_against_loop(viz.triplet_stats(sims, 5, block_elems=3 * sims.shape[1]), sims, 5)


def test_triplet_stats_ties_and_inputs():
    rng = np.random.default_rng(1)
    sims = np.round(rng.uniform(0, 1, size=(9, 45)), 1).astype(np.float32)    # many exact ties
    check_against_loop(viz.triplet_stats(sims, 5), sims, 5)
    half = sims.astype(np.float16)
    check_against_loop(viz.triplet_stats(torch.from_numpy(half), 5), half, 5, atol=1e-3)
    assert set(viz.triplet_stats(sims, 5, direction="t2i").direction) == {"t2i"}
    assert len(viz.triplet_stats(sims, 5, direction="i2t")) == 9


def test_triplet_stats_errors():
    with pytest.raises(KitError, match="captions_per_image=5"):
        viz.triplet_stats(np.zeros((4, 12)), 5)
    with pytest.raises(KitError, match="direction='x2y'"):
        viz.triplet_stats(np.zeros((4, 20)), 5, direction="x2y")
    bad = np.zeros((3, 15)); bad[1, 2] = np.nan
    with pytest.raises(KitError, match="NaN"):
        viz.triplet_stats(bad, 5)


def test_top_matches_matches_sorting_loop():
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(6, 30)).astype(np.float32)
    for q in range(6):
        top = viz.top_matches(sims, q, "i2t", k=5)
        ref = sorted(range(30), key=lambda j: -sims[q, j])[:5]
        assert top["index"].tolist() == ref and top["positive"].tolist() == [j // 5 == q for j in ref]
    top = viz.top_matches(sims, 17, "t2i", k=3)
    ref = sorted(range(6), key=lambda i: -sims[i, 17])[:3]
    assert top["index"].tolist() == ref and top["positive"].tolist() == [i == 3 for i in ref]


@pytest.fixture()
def run_dir(tmp_path):
    return make_fake_run(tmp_path / "runs" / "fake")


def test_load_run_reads_the_folder(run_dir):
    run = viz.load_run(run_dir)
    assert run.branches == ["anchor", "target"] and run.default_pair() == ("anchor", "target")
    assert run.captions_per_image() == 5 and run.available_splits() == ["dev", "test"]
    assert run.sims("target", "test").shape == (16, 80)
    ims, caps = run.embeddings("anchor")
    assert ims.shape == (24, 12) and caps.shape == (120, 12) and ims.dtype == np.float32
    assert run.history()["loss_transfer"].notna().sum() == 2
    texts = run.texts("dev")
    assert texts["images"][3] == "image 3" and texts["note"]        # the fake dataset folder does not exist


def test_load_run_errors_name_the_folder(run_dir, tmp_path):
    cases = [(tmp_path / "nope", "does not exist"), (run_dir / "config.json", "is a file"),
             (run_dir.parent, "folder of runs"), (tmp_path / "runs" / "fake" / "..", "folder of runs")]
    empty = tmp_path / "empty"; empty.mkdir()
    cases.append((empty, "no config.json"))
    for folder, expect in cases:
        with pytest.raises(KitError, match=expect):
            viz.load_run(folder)
    (run_dir / "sims_target_test.npy").unlink()
    run = viz.load_run(run_dir)
    with pytest.raises(KitError, match="sims_target_test.npy"):
        run.sims("target", "test")
    assert run.available_splits() == ["dev"]
    with pytest.raises(KitError, match="anchor, target"):
        run.sims("student")
    cfg = json.loads((run_dir / "config.json").read_text()); del cfg["branches"]
    (run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KitError, match="branches"):
        viz.load_run(run_dir)


def test_separability_and_scatter_numbers(run_dir):
    run = viz.load_run(run_dir)
    sims = {b: np.load(run_dir / f"sims_{b}_dev.npy").astype(np.float32) for b in ("anchor", "target")}
    ref = {b: loop_stats(s, 5) for b, s in sims.items()}
    m = 0.13
    fig = viz.separability_figure(run_dir, direction="i2t", margin=m)
    for b in ("anchor", "target"):
        rel = [r[2] for r in ref[b]["i2t"]]
        frac = sum(r > m for r in rel) / len(rel)
        assert f"{b} {frac:.1%}" in fig.layout.title.text
        trace = next(t for t in fig.data if t.name == b)
        for x, y in list(zip(trace.x, trace.y))[::17]:
            assert y == pytest.approx(sum(r > x for r in rel) / len(rel))
    assert fig.layout.meta["margin"] == m
    # arrays work like the run directory
    assert viz.separability_figure(sims, direction="i2t", margin=m).layout.title.text == fig.layout.title.text

    fig = viz.scatter_figure(run_dir, direction="t2i", margin=m)
    xa = np.array([r[2] for r in ref["anchor"]["t2i"]]); yb = np.array([r[2] for r in ref["target"]["t2i"]])
    assert f"for {np.mean(yb > xa):.1%}" in fig.layout.title.text and f"for {np.mean(yb > xa + m):.1%}" in fig.layout.title.text
    hits = [r[3] == 1 for r in ref["target"]["t2i"]]
    assert len(fig.data[0].x) == sum(hits) and len(fig.data[1].x) == len(hits) - sum(hits)
    with pytest.raises(KitError, match="two branches"):
        viz.scatter_figure(run_dir, branches=["target"])


def test_distance_figure_and_summary(run_dir):
    fig = viz.distance_figure(run_dir, direction="both", bins=20)
    assert len(fig.data) == 2 * 3 * 2          # branches x quantities x directions
    for t in fig.data:                           # each histogram is a density: area 1
        x, y = np.array(t.x)[::2], np.array(t.y)[::2]
        widths = np.array(t.x)[1::2] - x
        assert np.sum(y * widths) == pytest.approx(1.0, rel=1e-6)
    summary = viz.distance_summary(run_dir, margin=0.1)
    s = np.load(run_dir / "sims_target_dev.npy")
    ref = loop_stats(s, 5)["t2i"]
    row = summary[(summary.branch == "target") & (summary.direction == "t2i")].iloc[0]
    assert row["relative"] == pytest.approx(np.mean([r[2] for r in ref]), abs=1e-5)
    assert row["relative>0.1"] == pytest.approx(np.mean([r[2] > 0.1 for r in ref]))
    assert row["r1"] == pytest.approx(100 * np.mean([r[3] == 1 for r in ref]))


def test_history_figure(run_dir):
    fig = viz.history_figure(run_dir)
    names = {(t.name, t.xaxis) for t in fig.data}
    # rsum, total and base for both branches; transfer only for the target (the anchor logs None)
    assert len(fig.data) == 2 * 3 + 1 and ("target", "x4") in names and ("anchor", "x4") not in names
    assert "no evaluations" in viz.history_figure([]).layout.title.text


def test_umap_figure(run_dir):
    fig = viz.umap_figure(run_dir, n_images=12)
    images = [t for t in fig.data if t.name.endswith("images")]
    captions = [t for t in fig.data if t.name.endswith("captions")]
    assert len(images) == 2 and all(len(t.x) == 12 for t in images) and all(len(t.x) == 60 for t in captions)
    links = fig.data[0]
    assert len(links.x) == 3 * 60                  # caption -> image segments, separated by gaps


def test_explorer_reacts_to_controls(run_dir):
    pytest.importorskip("ipywidgets")
    ex = viz.Explorer(run_dir, umap_images=0)
    assert ex.margin.value == 0.2 and ex.branch_b.value == "target"
    ex.margin.value = 0.4
    assert ex.figures["separability"].layout.meta["margin"] == 0.4
    assert ex.figures["scatter"].layout.meta["margin"] == 0.4
    ex.branch_a.value = None
    assert "scatter" in ex.figures   # the last two-branch figure stays; the output shows a hint instead
    ex.load(run_dir.parent)
    assert "folder of runs" in ex.status.value


def test_explore_notebook_has_a_parameters_cell():
    "papermill -p needs the cell tag; `nbdev-clean` drops cell tags unless [tool.nbdev] allows them."
    nb = json.loads((ROOT / "nbs" / "explore.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "run_dir = None" in "".join(tagged[0]["source"]), \
        "nbs/explore.ipynb lost its 'parameters' cell tag (nbdev-clean?): papermill would ignore -p run_dir"


@pytest.mark.slow
def test_explore_notebook_headless(run_dir, tmp_path):
    "papermill runs nbs/explore.ipynb on a run directory and every figure lands in the saved notebook."
    pm = pytest.importorskip("papermill")
    out = tmp_path / "explore-out.ipynb"
    pm.execute_notebook(str(ROOT / "nbs" / "explore.ipynb"), str(out), cwd=str(tmp_path), progress_bar=False,
                        kernel_name="python3", parameters=dict(run_dir=str(run_dir), umap_images=15,
                                                               figures_dir=str(tmp_path / "figures")))
    assert sorted(p.stem for p in (tmp_path / "figures").glob("*.html")) == ["distances", "history", "scatter",
                                                                           "separability", "umap"]
    nb = json.loads(out.read_text())
    titles = [o["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
              for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if "application/vnd.plotly.v1+json" in o.get("data", {})]
    for start in ("Distance distributions", "Triplet separability", "Per-query relative distance", "Training curves", "UMAP"):
        assert any(t.startswith(start) for t in titles), (start, titles)

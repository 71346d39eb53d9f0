"dbl_kit.figures: the numbers each figure shows against brute-force counts, stages on one axis, titles that fit."
import numpy as np
import pytest
from fastcore.test import test_eq, test_close, test_fail

from dbl_kit.core import KitError
from dbl_kit import figures
from fake_run import make_fake_run
from reference import triplet_stats as loop_stats


@pytest.fixture()
def run_dir(tmp_path):
    return make_fake_run(tmp_path / "runs" / "fake")


def subtitle(fig):
    "The numbers a figure quotes under its headline, on one line."
    return " ".join(figures._title_lines(fig)[1:])


@pytest.mark.numeric
def test_separability_numbers(run_dir):
    sims = {b: np.load(run_dir / f"sims_{b}_dev.npy") for b in ("anchor", "target")}
    ref = {b: loop_stats(s, 5) for b, s in sims.items()}
    m = 0.13
    fig = figures.separability_figure(run_dir, direction="i2t", margin=m)
    for b in ("anchor", "target"):
        rel = [r[2] for r in ref[b]["i2t"]]
        assert f"{b} {sum(r > m for r in rel) / len(rel):.1%}" in subtitle(fig), subtitle(fig)
        trace = next(t for t in fig.data if t.name == b)
        for x, y in list(zip(trace.x, trace.y))[::17]:
            # the share above x: the figure's x are its own float32 values, the reference's float64, so a value at x
            # itself may fall either side; the share must lie between those strictly above x + 1e-6 and above x - 1e-6
            above = [sum(r > x + d for r in rel) / len(rel) for d in (1e-6, -1e-6)]
            assert above[0] - 1e-9 <= y <= above[1] + 1e-9, (b, x, y, above)
    test_eq(fig.layout.meta["margin"], m)
    # arrays give the same figure as the run directory
    test_eq(subtitle(figures.separability_figure(sims, direction="i2t", margin=m)), subtitle(fig))


@pytest.mark.numeric
def test_scatter_numbers(run_dir):
    ref = {b: loop_stats(np.load(run_dir / f"sims_{b}_dev.npy"), 5)["t2i"] for b in ("anchor", "target")}
    m = 0.13
    fig = figures.scatter_figure(run_dir, direction="t2i", margin=m)
    xa, yb = (np.array([r[2] for r in ref[b]]) for b in ("anchor", "target"))
    assert f"for {np.mean(yb > xa):.1%}" in subtitle(fig) and f"for {np.mean(yb > xa + m):.1%}" in subtitle(fig)
    hits = [r[3] == 1 for r in ref["target"]]
    test_eq((len(fig.data[0].x), len(fig.data[1].x)), (sum(hits), len(hits) - sum(hits)))
    test_eq(fig.layout.meta["margin"], m)
    test_fail(lambda: figures.scatter_figure(run_dir, branches=["target"]), exc=KitError, contains="two branches")


@pytest.mark.numeric
def test_distance_figure_densities(run_dir):
    fig = figures.distance_figure(run_dir, direction="both", bins=20)
    test_eq(len(fig.data), 2 * 3 * 2)               # branches x quantities x directions
    for t in fig.data:                              # each histogram is a density: area 1
        x, y = np.array(t.x), np.array(t.y)
        test_close(np.sum(y[::2] * (x[1::2] - x[::2])), 1.0, eps=1e-6)


def test_history_puts_stages_one_after_the_other(run_dir):
    "Offline: anchor stage epochs 1-2, then target stage epochs 1-2: the target's curve runs on at 3-4."
    fig = figures.history_figure(run_dir)
    xs = {(t.name, t.xaxis): list(t.x) for t in fig.data}
    test_eq(xs[("anchor (anchor stage)", "x")], [1.0, 2.0])
    test_eq(xs[("target", "x")], [3.0, 4.0])
    test_eq(xs[("anchor (target stage)", "x")], [3.0])
    assert min(xs[("target", "x")]) > max(xs[("anchor (anchor stage)", "x")])
    # rsum, total, base for the anchor's stage; rsum alone for its frozen evaluation; all four for the target
    test_eq(len(fig.data), 3 + 1 + 4)
    test_eq(sorted(n for n, ax in xs if ax == "x4"), ["target"])
    assert "anchor 1-2, target 3-4" in subtitle(fig)
    test_eq(fig.layout.xaxis.title.text, "epoch (across stages)")
    test_eq(sorted({(s.x0, s.x1) for s in fig.layout.shapes}), [(0.5, 2.5), (2.5, 4.5)])     # the stages, shaded
    assert "no evaluations" in figures.history_figure([]).layout.title.text


def test_history_of_a_baseline_has_no_transfer_panel_and_log_losses():
    "A baseline records no transfer loss: three panels; the warm-up epoch's large loss does not flatten the rest."
    records = [{"epoch": e, "stage": "train", "branch": "baseline", "rsum": 100.0 + e,
                "loss": {"total": loss, "base": loss, "transfer": None}} for e, loss in ((1, 80.0), (2, 4.0), (3, 3.5))]
    fig = figures.history_figure(records)
    titles = [a.text for a in fig.layout.annotations]
    assert "loss: transfer" not in titles and {"dev rSum", "loss: total", "loss: base"} <= set(titles)
    test_eq({t.xaxis for t in fig.data}, {"x", "x2", "x3"})
    test_eq((fig.layout.yaxis.type, fig.layout.yaxis2.type, fig.layout.yaxis3.type), (None, "log", "log"))


def test_history_of_an_unfinished_run(tmp_path):
    fig = figures.history_figure(make_fake_run(tmp_path / "runs" / "open", finished=False))
    test_eq([list(t.x) for t in fig.data if t.name == "target" and t.xaxis == "x"], [[3.0]])


def test_umap_figure(run_dir):
    fig = figures.umap_figure(run_dir, n_images=12)
    test_eq([len(t.x) for t in fig.data if t.name.endswith("images")], [12, 12])
    test_eq([len(t.x) for t in fig.data if t.name.endswith("captions")], [60, 60])
    test_eq(len(fig.data[0].x), 3 * 60)             # caption -> image segments, separated by gaps


def test_umap_without_embeddings_says_why(tmp_path):
    fig = figures.umap_figure(make_fake_run(tmp_path / "runs" / "tokens", embeddings=False))
    test_eq((fig.layout.meta["available"], len(fig.data)), (False, 0))
    assert "token sets" in fig.layout.meta["reason"] and "token sets" in fig.layout.annotations[0].text
    assert fig.layout.title.text.startswith("UMAP")
    fig = figures.umap_figure(make_fake_run(tmp_path / "runs" / "open", finished=False))
    assert "not finished" in fig.layout.meta["reason"]


def test_titles_fit_their_figures(run_dir):
    "Every title line stays within the width budget of a half-width figure, and the top margin holds all lines."
    many = {b: np.load(run_dir / "sims_target_dev.npy") for b in ("branch0", "branch1", "branch2", "branch3")}
    figs = {**figures.figures(run_dir, umap_images=10), "both": figures.distance_figure(run_dir),
            "many": figures.separability_figure(many, direction="both")}
    for name, fig in figs.items():
        lines = figures._title_lines(fig)
        assert all(len(line) <= figures._TITLE_CHARS for line in lines), (name, lines)
        assert fig.layout.margin.t >= 36 + 17 * (len(lines) - 1), (name, fig.layout.margin.t)
        test_eq((fig.layout.title.x, fig.layout.title.xanchor), (0.01, "left"))
    lines = figures._title_lines(figs["many"])          # eight shares wrap onto several lines, none lost
    assert len(lines) > 2 and all(f"branch{i} {d} " in " ".join(lines) for i in range(4) for d in ("i2t", "t2i")), lines

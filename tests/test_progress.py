"Progress under papermill: whole lines (no carriage returns), every phase, and the metrics table once."
import json
from pathlib import Path

import papermill as pm
from fastcore.test import test_eq

NBS = Path(__file__).resolve().parents[1] / "nbs"


def test_papermill_gets_progress_lines_and_one_table(tmp_path):
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(NBS / "train.ipynb"), str(out), cwd=str(NBS), progress_bar=False, kernel_name="python3",
                        parameters=dict(scenario="offline", epochs=1, anchor_epochs=1, max_train_captions=640, batch_size=32,
                                        embed_size=32, threads=1, progress=True, runs_path=str(tmp_path / "runs")))
    nb = json.loads(out.read_text())
    streams = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "stream")
    assert "\r" not in streams
    lines = streams.splitlines()
    for phase in ("anchor epoch 1/1:", "target epoch 1/1:"):
        mine = [l for l in lines if l.startswith(phase)]
        assert len(mine) >= 2 and mine[0].startswith(f"{phase}   5% 1/20") and "100% 20/20" in mine[-1], mine   # first step ... the end
    assert not any("widget" in o.get("data", {}) or "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for c in nb["cells"] for o in c.get("outputs", []))
    test_eq([l.split()[1] for l in lines if l.startswith("test ") and "rSum" in l], ["anchor", "target"])   # a line per branch
    test_eq(sum(l.startswith("test target (target)") for l in lines), 1)
    tables = [o for c in nb["cells"] for o in c.get("outputs", []) if "text/html" in o.get("data", {}) and "rsum" in "".join(o["data"]["text/html"])]
    test_eq(len(tables), 1)

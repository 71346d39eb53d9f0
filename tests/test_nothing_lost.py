"""Nothing lost on `eval` and `import`: stopped by Ctrl-C (SIGINT) or killed outright (SIGKILL) while scoring, in the
middle of a file write, or just before the folder is put in place, the output is either the folder that was there
before, byte for byte, or no folder at all; the next run of the command finishes and leaves no hidden leftovers."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

import dbl_kit
from dbl_kit.cli import main
from dbl_kit.data import resolve_dataset
from test_bad_inputs import SIZES, slice_shapes, snapshot

HERE = Path(__file__).resolve().parent
POINTS = [("score", 1), ("write", 1), ("write", 2), ("commit", 1)]


@pytest.fixture(scope="module")
def world(tmp_path_factory, shapes_data_path):
    "A tiny dataset, a run trained on it, a published SCAN checkpoint with a 32-dimensional dataset of its own."
    from test_published import VOCAB, WORDS, save, scan_ckpt
    root = tmp_path_factory.mktemp("lost")
    ds = slice_shapes(resolve_dataset("shapes", shapes_data_path), root / "tiny_precomp")
    run = dbl_kit.train(dataset=str(ds), runs_path=str(root / "runs"), threads=1, progress=False, epochs=1,
                        max_train_captions=200, embed_size=32, word_dim=32).run_dir
    d32 = root / "d32_precomp"; d32.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "dev", "test"):
        np.save(d32 / f"{split}_ims.npy", rng.standard_normal((8, 4, 32)).astype(np.float32))
        (d32 / f"{split}_caps.txt").write_text("".join(" ".join(rng.choice(WORDS, 4)) + "\n" for _ in range(40)))
    vocab = root / "vocab.json"; vocab.write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(VOCAB)}}))
    return dict(root=root, ds=ds, run=run, d32=d32, ckpt=save(scan_ckpt(), root / "scan.pth.tar"), vocab=vocab)


def commands(w, out):
    return {"eval": ["eval", str(w["run"]), "--dataset", str(w["ds"]), "--out", str(out), "--quiet", "--threads", "1"],
            "import": ["import", str(w["ckpt"]), "--vocab", str(w["vocab"]), "--out", str(out), "--dataset", str(w["d32"])]}


def stopped(point, n, sig, argv):
    return subprocess.run([sys.executable, str(HERE / "interrupt_runner.py"), point, str(n), sig, json.dumps(argv)],
                          capture_output=True, text=True, timeout=300, cwd=HERE.parent)


@pytest.mark.parametrize("command", ["eval", "import"])
@pytest.mark.parametrize("sig", ["INT", "KILL"])
def test_stopped_anywhere_leaves_the_old_folder_or_none(command, sig, world, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    assert main(commands(world, old)[command]) == 0                      # a folder to replace: an earlier result
    before = snapshot(old)
    seen = []
    for point, n in POINTS:
        for out, extra in ((old, ["--overwrite"]), (new, [])):
            r = stopped(point, n, sig, commands(world, out)[command] + extra)
            seen.append((point, n, out.name, r.returncode))
            if sig == "KILL": assert r.returncode == -9, (point, n, r.stderr[-2000:])
            else:
                assert r.returncode == 130, (point, n, r.stderr[-2000:])
                kept = "the folder that was there is unchanged" if out == old else "nothing was written"
                assert r.stderr.strip().splitlines()[-1] == f"Stopped before {out} was complete; {kept}.", r.stderr[-2000:]
            assert snapshot(old) == before, (point, n, "the old folder changed")
            assert not new.exists(), (point, n, "a folder appeared")
    assert len(seen) == 2 * len(POINTS)
    # the next run finishes; what the killed ones left (hidden staging folders) is gone
    assert main(commands(world, new)[command]) == 0 and (new / "metrics.json").is_file()
    assert main(commands(world, old)[command] + ["--overwrite"]) == 0
    test_names = sorted(p.name for p in tmp_path.iterdir())
    assert test_names == ["new", "old"], test_names

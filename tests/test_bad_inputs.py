"""Every bad input a newcomer makes is answered before any work (issue 12, item 4).

Each row of `BAD` builds one bad situation in a temporary folder and calls `dbl_kit.train`. The answer must be a
`KitError` (exactly) whose message names the thing, where it is and how to fix it; no torch/numpy exception may
hang behind it (`raise ... from None`); nothing already on disk may change; no run directory may be created.
Inputs a newcomer makes that the kit reads correctly (Windows line ends, a byte-order mark, float64 features, a
read-only data folder, a `testall` split of 5000 - 1 images) are tested below the table as what they are: fine."""
import contextlib, hashlib, json, os, shutil, tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import dbl_kit
from dbl_kit.config import make_config
from dbl_kit.core import KitError
from dbl_kit.data import Vocab, resolve_dataset
from dbl_kit.validate import validate_run

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"train": 100, "dev": 40, "test": 40}     # images per split of the tiny copies of shapes (5 captions each)
FAST = dict(threads=1, progress=False, epochs=1, max_train_captions=200)
SMALL = dict(embed_size=32, word_dim=32)          # the anchor's sizes: a run that uses the anchor asks for them too
NOBODY = 65534


# ---- the situations -------------------------------------------------------------------------------------------------
def slice_shapes(src, dst, start=0, sizes=SIZES):
    "A small precomp folder: `sizes[split]` images of `src` from image `start` on, with their captions."
    dst.mkdir(parents=True)
    for split, n in sizes.items():
        ims = np.load(src / f"{split}_ims.npy", mmap_mode="r")
        np.save(dst / f"{split}_ims.npy", np.array(ims[start:start + n]))
        lines = (src / f"{split}_caps.txt").read_bytes().split(b"\n")
        (dst / f"{split}_caps.txt").write_bytes(b"\n".join(lines[5 * start:5 * (start + n)]) + b"\n")
    return dst


@pytest.fixture(scope="module")
def base(tmp_path_factory, shapes_data_path):
    "Two tiny datasets (different images of shapes) and a finished anchor run trained on the first, made once."
    root = tmp_path_factory.mktemp("base")
    src = resolve_dataset("shapes", shapes_data_path)
    ds = slice_shapes(src, root / "tiny_precomp")
    other = slice_shapes(src, root / "other_precomp", start=200)
    anchor = dbl_kit.train(dataset=str(ds), runs_path=str(root / "runs"), **FAST, **SMALL)
    return SimpleNamespace(root=root, ds=ds, other=other, anchor=anchor.run_dir, result=anchor)


def data(t, b, name="data"):
    "A copy of the tiny dataset in the case's folder, to break (readable by everyone, as a dataset usually is)."
    return open_up(shutil.copytree(b.ds, t / name))


def anchor_copy(t, b):
    "A copy of the anchor run in the case's folder, to break."
    return Path(shutil.copytree(b.anchor, t / "anchor_run"))


def lines_of(path):
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")


def offline(b, **more):
    "Parameters of an offline run on the anchor's dataset, with the anchor's sizes."
    return {"scenario": "offline", "dataset": str(b.ds), "anchor_ckpt": str(b.anchor), **SMALL, **more}


# ---- one function per bad input: (params for train, what, where, fix), each a part of the expected sentence ----------
def typo_in_a_parameter_name(t, b, mp):
    return dict(dataset=str(b.ds), embed_sise=32), "'embed_sise'", "Unknown parameter", "Did you mean 'embed_size'?"

def a_bad_value(t, b, mp):
    return dict(dataset=str(b.ds), lr=-1), "lr=-1", "Parameter lr", "must be > 0"

def an_unknown_model_name(t, b, mp):
    return dict(dataset=str(b.ds), model="resnet"), "model='resnet'", "Parameter model", "accepted values: 'vse'"

def an_unknown_dataset_name(t, b, mp):
    return dict(dataset="cocoo"), "dataset='cocoo'", "nor an existing folder", "pass one of those names or the path"

def a_dataset_folder_with_only_a_zip(t, b, mp):
    (t / "download").mkdir(); (t / "download" / "data.zip").write_bytes(b"PK\x03\x04")
    return dict(dataset=str(t / "download")), "data.zip", str(t / "download"), "unpack the archive"

def a_dataset_unpacked_one_folder_too_deep(t, b, mp):
    shutil.copytree(b.ds, t / "download" / "data" / "f30k_precomp")
    return dict(dataset=str(t / "download")), "no train_ims.npy", str(t / "download" / "data" / "f30k_precomp"), "pass that folder"

def features_saved_as_int(t, b, mp):
    d = data(t, b); np.save(d / "train_ims.npy", np.load(d / "train_ims.npy").astype(np.int64))
    return dict(dataset=str(d)), "train_ims.npy holds a 3-D int64 array", str(d), "save them as float32"

def a_2d_features_file(t, b, mp):
    d = data(t, b); np.save(d / "dev_ims.npy", np.load(d / "dev_ims.npy").mean(1))
    return dict(dataset=str(d)), "dev_ims.npy holds a 2-D float32 array", str(d), "features[:, None, :]"

def a_feature_dimension_that_differs_between_splits(t, b, mp):
    d = data(t, b); np.save(d / "test_ims.npy", np.load(d / "test_ims.npy")[..., :64])
    return dict(dataset=str(d)), "test_ims.npy: 64", str(d), "export them again with one"

def nan_in_features(t, b, mp):
    d = data(t, b); x = np.load(d / "train_ims.npy"); x[3, 2, 1] = np.nan; np.save(d / "train_ims.npy", x)
    return dict(dataset=str(d)), "train_ims.npy: image 3 (0-based) has NaN", str(d), "np.nan_to_num"

def an_empty_caption_line(t, b, mp):
    d = data(t, b); lines = lines_of(d / "dev_caps.txt"); lines[6] = b"  "; write_lines(d / "dev_caps.txt", lines)
    return dict(dataset=str(d)), "dev_caps.txt: line 7 is empty", str(d), "write the missing caption there"

def a_non_utf8_byte(t, b, mp):
    d = data(t, b); lines = lines_of(d / "test_caps.txt"); lines[1] = "a café sign".encode("latin-1")
    write_lines(d / "test_caps.txt", lines)
    return dict(dataset=str(d)), "test_caps.txt: line 2 is not valid UTF-8", str(d), "re-save the file with UTF-8"

def a_missing_caption_file(t, b, mp):
    d = data(t, b); (d / "test_caps.txt").unlink()
    return dict(dataset=str(d)), "test_caps.txt is missing", str(d), "put the split's captions there"

def fewer_caption_lines_than_images(t, b, mp):
    d = data(t, b); write_lines(d / "train_caps.txt", lines_of(d / "train_caps.txt")[:90])
    return dict(dataset=str(d)), "train_caps.txt has 90 lines for 100 images", str(d), "add or remove captions to match"

def a_broken_testall_split(t, b, mp):
    d = data(t, b); shutil.copy(d / "test_ims.npy", d / "testall_ims.npy")
    write_lines(d / "testall_caps.txt", lines_of(d / "test_caps.txt")[:-1])
    return dict(dataset=str(d)), "testall_caps.txt has 199 lines for 40 images", str(d), "add or remove captions"

def cuda_on_a_machine_without_gpu(t, b, mp):
    if torch.cuda.is_available(): pytest.skip("this machine has a CUDA GPU")
    return dict(dataset=str(b.ds), device="cuda"), "device='cuda'", "no CUDA GPU", "use device='auto' or 'cpu'"

def a_device_that_is_no_device(t, b, mp):
    return dict(dataset=str(b.ds), device="gpu0"), "device='gpu0'", "not a torch device", "use 'auto', 'cpu' or 'cuda[:N]'"

def transfer_given_to_baseline(t, b, mp):
    return dict(dataset=str(b.ds), transfer="kd"), "transfer='kd'", "scenario='baseline'", "drop transfer"

def anchor_given_to_baseline(t, b, mp):
    return dict(dataset=str(b.ds), anchor_ckpt=str(b.anchor)), f"anchor_ckpt={str(b.anchor)!r}", "scenario='baseline'", "drop anchor_ckpt"

def anchor_with_another_embed_size(t, b, mp):
    return (offline(b, embed_size=64), "embed_size=32", str(b.anchor / "baseline.safetensors"), "pass embed_size=32 to match")

def anchor_with_another_backbone(t, b, mp):
    return (offline(b, model="scan_t2i"), "'vse' backbone", str(b.anchor / "baseline.safetensors"), "pass model='vse'")

def anchor_trained_on_another_dataset(t, b, mp):
    return (offline(b, dataset=str(b.other)), f"trained on dataset {str(b.ds)!r}", str(b.other), "train an anchor on this dataset")

def anchor_trained_on_other_features(t, b, mp):
    d = data(t, b)
    for s in SIZES: np.save(d / f"{s}_ims.npy", np.load(d / f"{s}_ims.npy")[..., :64])
    return (offline(b, dataset=str(d)), "reads 128-dimensional region features", str(d / "train_ims.npy"), "train an anchor on this one")

def a_truncated_anchor_safetensors(t, b, mp):
    a = anchor_copy(t, b); f = a / "baseline.safetensors"; f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return offline(b, anchor_ckpt=str(a)), "not a complete .safetensors file", str(f), "copy it again"

def anchor_weights_and_json_from_different_runs(t, b, mp):
    a = anchor_copy(t, b); info = json.loads((a / "baseline.json").read_text()); info["model"]["word_dim"] = 48
    (a / "baseline.json").write_text(json.dumps(info))
    return offline(b, anchor_ckpt=str(a)), "do not fit the backbone baseline.json describes", str(a), "copy both from one run directory"

def an_anchor_path_that_does_not_exist(t, b, mp):
    return offline(b, anchor_ckpt=str(t / "runs_old" / "best")), "does not exist", str(t / "runs_old" / "best"), "pass a finished run directory"

def an_anchor_run_that_did_not_finish(t, b, mp):
    a = anchor_copy(t, b); (a / "metrics.json").unlink()
    return offline(b, anchor_ckpt=str(a)), "did not finish (no metrics.json)", str(a), "pass one of its checkpoints (baseline.safetensors)"

def an_anchor_checkpoint_without_its_json(t, b, mp):
    a = anchor_copy(t, b); (a / "baseline.json").unlink()
    return offline(b, anchor_ckpt=str(a / "baseline.safetensors")), "has no baseline.json beside it", str(a), "copy baseline.json"

def an_anchor_without_its_vocabulary(t, b, mp):
    a = anchor_copy(t, b); (a / "vocab.json").unlink()
    return offline(b, anchor_ckpt=str(a)), "has no vocab.json beside it", str(a), "copy vocab.json from the anchor's run directory"

def an_anchor_with_another_vocabulary(t, b, mp):
    Vocab([*Vocab.SPECIALS, "a", "red", "circle"]).save(t / "mine.json")
    return offline(b, vocab_path=str(t / "mine.json")), "86 word vectors", str(t / "mine.json"), "pass the anchor's vocabulary"

def a_vocabulary_with_non_integer_indices(t, b, mp):
    words = {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "circle": "4a"}
    (t / "vocab.json").write_text(json.dumps({"word2idx": words}))
    return dict(dataset=str(b.ds), vocab_path=str(t / "vocab.json")), "'circle'", str(t / "vocab.json"), "rebuild the vocabulary"

def a_vocabulary_path_that_is_a_folder(t, b, mp):
    return (dict(dataset=str(b.ds), vocab_path=str(b.anchor)), "is a folder", str(b.anchor),
            f"vocab_path={str(b.anchor / 'vocab.json')!r}")

def a_vocabulary_that_is_not_utf8(t, b, mp):
    text = json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "café": 4}}, ensure_ascii=False)
    (t / "vocab.json").write_bytes(text.encode("latin-1"))
    return dict(dataset=str(b.ds), vocab_path=str(t / "vocab.json")), "is not UTF-8", str(t / "vocab.json"), "re-save it as UTF-8"

def a_vocabulary_path_that_does_not_exist(t, b, mp):
    return (dict(dataset=str(b.ds), vocab_path=str(t / "vocab.json")), "does not exist", str(t / "vocab.json"),
            "leave vocab_path unset")

def a_read_only_runs_folder(t, b, mp):
    (t / "runs").mkdir(mode=0o555); (t / "runs").chmod(0o555)
    return dict(dataset=str(data(t, b)), runs_path=str(t / "runs")), "is not writable", str(t / "runs"), "pass a runs_path you can write to"
a_read_only_runs_folder.unprivileged = True

def an_unreadable_caption_file(t, b, mp):
    d = data(t, b); (d / "dev_caps.txt").chmod(0)
    return dict(dataset=str(d)), "dev_caps.txt", f"in {d} is not readable", "fix its permissions"
an_unreadable_caption_file.unprivileged = True

def shapes_to_generate_in_a_read_only_data_path(t, b, mp):
    (t / "data").mkdir(); (t / "data").chmod(0o555)
    return dict(dataset="shapes", data_path=str(t / "data")), "dataset='shapes' must first be generated", str(t / "data"), "point data_path at a folder you can write to"
shapes_to_generate_in_a_read_only_data_path.unprivileged = True

def a_runs_path_that_is_a_file(t, b, mp):
    (t / "runs.txt").write_text("")
    return dict(dataset=str(b.ds), runs_path=str(t / "runs.txt" / "runs")), "is a file, not a folder", str(t / "runs.txt"), "point runs_path at a folder"

def a_run_name_that_climbs_out(t, b, mp):
    return dict(dataset=str(b.ds), run_name="../../x"), "run_name='../../x' is not a plain folder name", str(t / "runs"), "e.g. run_name='x'"

def an_absolute_run_name(t, b, mp):
    return dict(dataset=str(b.ds), run_name=str(t / "elsewhere")), "is not a plain folder name", str(t / "runs"), "e.g. run_name='elsewhere'"

def a_run_name_with_a_separator(t, b, mp):
    return dict(dataset=str(b.ds), run_name="exp/1"), "run_name='exp/1'", str(t / "runs"), "e.g. run_name='exp-1'"

def a_full_disk(t, b, mp):
    real = shutil.disk_usage
    mp.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=2**20))
    return dict(dataset=str(b.ds)), "1 MB free", str(t / "runs"), "free some space there, or point runs_path at another disk"


BAD = [typo_in_a_parameter_name, a_bad_value, an_unknown_model_name, an_unknown_dataset_name,
       a_dataset_folder_with_only_a_zip, a_dataset_unpacked_one_folder_too_deep, features_saved_as_int, a_2d_features_file,
       a_feature_dimension_that_differs_between_splits, nan_in_features, an_empty_caption_line, a_non_utf8_byte,
       a_missing_caption_file, fewer_caption_lines_than_images, a_broken_testall_split, cuda_on_a_machine_without_gpu,
       a_device_that_is_no_device, transfer_given_to_baseline, anchor_given_to_baseline, anchor_with_another_embed_size,
       anchor_with_another_backbone, anchor_trained_on_another_dataset, anchor_trained_on_other_features,
       a_truncated_anchor_safetensors, anchor_weights_and_json_from_different_runs, an_anchor_path_that_does_not_exist,
       an_anchor_run_that_did_not_finish, an_anchor_checkpoint_without_its_json, an_anchor_without_its_vocabulary,
       an_anchor_with_another_vocabulary, a_vocabulary_with_non_integer_indices, a_vocabulary_path_that_is_a_folder,
       a_vocabulary_that_is_not_utf8, a_vocabulary_path_that_does_not_exist, a_read_only_runs_folder,
       an_unreadable_caption_file, shapes_to_generate_in_a_read_only_data_path, a_runs_path_that_is_a_file,
       a_run_name_that_climbs_out, an_absolute_run_name, a_run_name_with_a_separator, a_full_disk]


# ---- what "nothing changed" and "unprivileged" mean ---------------------------------------------------------------
def snapshot(root) -> dict:
    "Every path under `root`: (size, mtime, sha1) for files, 'dir' for folders."
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_dir(): out[str(p)] = "dir"; continue
        st = p.stat()
        try: digest = hashlib.sha1(p.read_bytes()).hexdigest()
        except PermissionError: digest = None                 # an unreadable file of the case (not as root)
        out[str(p)] = (st.st_size, st.st_mtime_ns, digest)
    return out


@contextlib.contextmanager
def unprivileged():
    """Run the block as a user that permissions apply to. Root reads and writes through any permission, so a
    test running as root (CI containers) drops to `nobody` for the block (real and effective ids; root stays the
    saved id, so it comes back); when even that is refused, the test is skipped with the reason."""
    if os.geteuid() != 0: yield; return
    try:
        os.setresgid(NOBODY, NOBODY, 0)
        try: os.setresuid(NOBODY, NOBODY, 0)
        except OSError: os.setresgid(0, 0, 0); raise
    except (OSError, AttributeError) as e:
        pytest.skip(f"the test runs as root, whom permissions do not stop, and switching to user nobody failed ({e})")
    try: yield
    finally:
        os.setresuid(0, 0, 0); os.setresgid(0, 0, 0)


@pytest.fixture
def open_tmp():
    "A temporary folder that user nobody may enter and write in (pytest's own are root's alone when run as root)."
    d = Path(tempfile.mkdtemp(prefix="dbl-kit-bad-inputs-"))
    d.chmod(0o777)
    yield d
    for p in [d, *d.rglob("*")]: p.chmod(0o777 if p.is_dir() else 0o666)
    shutil.rmtree(d)


def open_up(root) -> Path:
    "Make a copied tree readable by everyone (pytest's temporary folders are 0700); returns `root`."
    for p in [Path(root), *Path(root).rglob("*")]: p.chmod(p.stat().st_mode | (0o755 if p.is_dir() else 0o644))
    return Path(root)


# ---- the table ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("build", BAD, ids=[f.__name__ for f in BAD])
def test_bad_input_is_answered_before_work(build, base, tmp_path, request, monkeypatch):
    as_user = getattr(build, "unprivileged", False)
    t = request.getfixturevalue("open_tmp") if as_user else tmp_path
    params, what, where, fix = build(t, base, monkeypatch)
    params = {"runs_path": str(t / "runs"), **FAST, **params}
    runs = Path(params["runs_path"])
    runs_before = sorted(runs.iterdir()) if runs.is_dir() else None
    before = snapshot(t), snapshot(base.root)
    with unprivileged() if as_user else contextlib.nullcontext():
        with pytest.raises(Exception) as caught:
            dbl_kit.train(**params)
    e = caught.value
    assert type(e) is KitError, f"{type(e).__name__}: {e}"
    msg = str(e)
    for part in (what, where, fix):
        assert part in msg, f"{part!r} is not in the message: {msg}"
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__), "a torch/numpy traceback hangs behind it"
    assert (snapshot(t), snapshot(base.root)) == before, "something on disk changed"
    assert (sorted(runs.iterdir()) if runs.is_dir() else None) == runs_before, "a run directory was created"
    assert not (t / "runs").exists() or not any((t / "runs").iterdir())


def test_the_table_is_long_enough():
    assert len(BAD) >= 25


# ---- what a newcomer does that is fine --------------------------------------------------------------------------------
def test_windows_captions_and_float64_features_train_as_the_clean_data(base, tmp_path):
    """Captions saved on Windows (CRLF line ends, a UTF-8 byte-order mark) and features saved as float64 are read as the
    clean files are: the run builds the same vocabulary and gets the same test metrics; config.json notes the float64."""
    d = data(tmp_path, base)
    for s in SIZES:
        (d / f"{s}_caps.txt").write_bytes(b"\xef\xbb\xbf" + (d / f"{s}_caps.txt").read_bytes().replace(b"\n", b"\r\n"))
        np.save(d / f"{s}_ims.npy", np.load(d / f"{s}_ims.npy").astype(np.float64))
    r = dbl_kit.train(dataset=str(d), runs_path=str(tmp_path / "runs"), **FAST, **SMALL)
    assert Vocab.load(r.run_dir / "vocab.json") == Vocab.load(base.anchor / "vocab.json")
    assert r.metrics["rsum"] == pytest.approx(base.result.metrics["rsum"], abs=1e-6)
    notes = json.loads((r.run_dir / "config.json").read_text())["notes"]
    assert [n.split(" ")[0] for n in notes] == ["train_ims.npy", "dev_ims.npy", "test_ims.npy"]
    assert all("float64" in n and "astype(np.float32)" in n for n in notes)


def test_a_read_only_data_folder_is_enough(base, open_tmp):
    "Training only reads the dataset: a folder (and files) the user may not write trains, and stays as it was."
    d = data(open_tmp, base)
    for p in d.iterdir(): p.chmod(0o444)
    d.chmod(0o555)
    before = snapshot(d)
    with unprivileged():
        r = dbl_kit.train(dataset=str(d), runs_path=str(open_tmp / "runs"), **FAST, **SMALL)
    assert r.metrics["rsum"] == pytest.approx(base.result.metrics["rsum"], abs=1e-6)
    assert snapshot(d) == before


def test_testall_not_a_multiple_of_1000_images_is_a_note(base, tmp_path):
    "A testall split of 40 images is evaluated whole (the 5K metrics) without 1K folds: a note, not an error."
    d = data(tmp_path, base)
    for part in ("ims.npy", "caps.txt"): shutil.copy(d / f"test_{part}", d / f"testall_{part}")
    notes = validate_run(make_config(dataset=str(d), runs_path=str(tmp_path / "runs"), **FAST)).notes
    assert notes == ["testall has 40 images, not a multiple of 1000: it gets the 5K evaluation (all 40 images) only, no 1K folds."]
    assert not (tmp_path / "runs").exists()


# ---- in a notebook: one line, not a traceback -------------------------------------------------------------------------
def test_papermill_shows_the_sentence_not_a_traceback(tmp_path):
    "Through papermill, a KitError's output is `KitError: <sentence>` alone: the last line the user sees is the sentence."
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError) as caught:
        pm.execute_notebook(str(ROOT / "nbs" / "train.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(ROOT / "nbs"),
                            parameters=dict(model="nosuch", runs_path=str(tmp_path / "runs")), progress_bar=False,
                            kernel_name="python3")
    e = caught.value
    assert e.ename == "KitError" and e.evalue.startswith("Parameter model='nosuch' is invalid")
    assert e.traceback == [f"KitError: {e.evalue}"]                     # the cell's whole error output: one line
    assert str(e).rstrip().splitlines()[-1] == f"KitError: {e.evalue}"  # what the papermill command prints last
    outputs = [o for c in json.loads((tmp_path / "out.ipynb").read_text())["cells"] for o in c.get("outputs", [])
               if o.get("output_type") == "error"]
    assert [o["traceback"] for o in outputs] == [[f"KitError: {e.evalue}"]]
    assert not (tmp_path / "runs").exists()


# ==== the other commands: eval, import, report, check and the sweep runner ================================================
# Each case returns (argv for `dbl-kit`, or a callable for the sweep runner; what, where, fix). The answer must be exit
# status 2 with one line `error: ...` holding the three parts; no member scored and no run trained (the work functions
# are replaced by ones that fail the test); every file under the case's folder and the shared one unchanged.
from dbl_kit.cli import main as dbl_main
from dbl_kit.rundir import EvalDir


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    "A published-layout SCAN checkpoint (32-dimensional features) and its vocabulary (tests/test_published.py builds them)."
    from test_published import VOCAB, save, scan_ckpt
    root = tmp_path_factory.mktemp("published")
    vocab = root / "vocab.json"
    vocab.write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(VOCAB)}}))
    return SimpleNamespace(ckpt=save(scan_ckpt(), root / "scan.pth.tar"), vocab=vocab, root=root)


def an_evaluation(t, b, name="ev"):
    "A finished evaluation folder in the case's folder (written here, before the snapshot)."
    n = 40
    return EvalDir.write(t / name, {"branches": ["eval"], "target": "eval", "anchor": None, "dataset": str(b.ds),
                                    "split": "test", "members": []}, np.eye(n, 5 * n), {"branches": {}}).path


def sims_file(t, array=None, name="m.npy"):
    np.save(t / name, np.random.default_rng(0).standard_normal((40, 200)).astype(np.float32) if array is None else array)
    return str(t / name)


def ev(b, *more):
    return ["eval", str(b.anchor), "--dataset", str(b.ds), "--quiet", "--threads", "1", *more]


def eval_out_that_is_another_run(t, b, p, mp):
    other = anchor_copy(t, b)
    return ev(b, "--out", str(other)), "already holds a run directory (finished)", str(other), "add --overwrite"

def eval_out_that_is_an_evaluation(t, b, p, mp):
    e = an_evaluation(t, b)
    return ev(b, "--out", str(e)), "already holds an evaluation folder", str(e), "pass a new folder, or add --overwrite"

def eval_out_that_is_a_file(t, b, p, mp):
    (t / "out.txt").write_text("notes")
    return ev(b, "--out", str(t / "out.txt")), "is a file, not a folder", str(t / "out.txt"), "pass a new folder name"

def eval_out_under_a_file(t, b, p, mp):
    (t / "out.txt").write_text("notes")
    return ev(b, "--out", str(t / "out.txt" / "ev")), "out.txt is a file, not a folder", str(t), "whose parent folders are folders"

def eval_out_under_proc(t, b, p, mp):
    return ev(b, "--out", "/proc/dbl-kit/ev"), "cannot be written", "/proc/dbl-kit/ev", "a disk you can write to"

def eval_out_in_a_read_only_folder(t, b, p, mp):
    a, d = anchor_copy(t, b), data(t, b)
    open_up(a); (t / "ro").mkdir(); (t / "ro").chmod(0o555)
    return (["eval", str(a), "--dataset", str(d), "--quiet", "--out", str(t / "ro" / "ev")], "cannot be written",
            str(t / "ro"), "a disk you can write to")
eval_out_in_a_read_only_folder.unprivileged = True

def eval_on_a_full_disk(t, b, p, mp):
    real = shutil.disk_usage
    mp.setattr(shutil, "disk_usage", lambda q: real(q)._replace(free=2**19))
    return ev(b, "--out", str(t / "ev")), "0 MB free", str(t / "ev"), "free some space there"

def eval_of_a_run_that_did_not_finish(t, b, p, mp):
    a = anchor_copy(t, b); (a / "metrics.json").unlink()
    return ["eval", str(a), "--dataset", str(b.ds), "--quiet"], "did not finish training", str(a), "dbl-kit train --resume"

def eval_of_an_evaluation_folder(t, b, p, mp):
    e = an_evaluation(t, b)
    return ["eval", str(e), "--dataset", str(b.ds)], "is an evaluation folder, not a run", str(e), "--sims"

def eval_with_a_damaged_config(t, b, p, mp):
    a = anchor_copy(t, b); (a / "config.json").write_text('{"branches": ["baseline"]')
    return ["eval", str(a), "--dataset", str(b.ds)], "is damaged (not valid JSON", str(a / "config.json"), "restore config.json"

def eval_weights_one_short(t, b, p, mp):
    return ev(b, "--sims", sims_file(t), "--weights", "1"), "gives 1 weight(s) for 2 member(s)", "--weights 1", "--weights 1,1"

def eval_an_infinite_weight(t, b, p, mp):
    return ev(b, "--sims", sims_file(t), "--weights", "1,inf"), "must be a finite number >= 0", "--weights 1,inf", "--weights 1,1"

def eval_sims_that_is_a_text_file(t, b, p, mp):
    (t / "m.npy").write_text("0.1 0.2\n")
    return ev(b, "--sims", str(t / "m.npy")), "is not a .npy file: it starts with b'0.1 0.'", str(t / "m.npy"), "numpy.save"

def eval_sims_of_integers(t, b, p, mp):
    f = sims_file(t, np.arange(40 * 200).reshape(40, 200))
    return ev(b, "--sims", f), "holds int64 values", f, "save the scores as float32"

def eval_sims_of_float16(t, b, p, mp):
    f = sims_file(t, np.zeros((40, 200), np.float16))
    return ev(b, "--sims", f), "holds float16 values", f, "save the scores as float32"

def eval_sims_with_a_nan(t, b, p, mp):
    x = np.zeros((40, 200), np.float32); x[5, 9] = np.nan
    f = sims_file(t, x)
    return ev(b, "--sims", f), "the first nan at row 5, column 9", f, "numpy.nan_to_num"

def eval_sims_of_another_split(t, b, p, mp):
    f = sims_file(t, np.zeros((30, 150), np.float32))
    return ev(b, "--sims", f), "has shape (30, 150)", f, "pass the matrix of that split"

def eval_batch_size_zero(t, b, p, mp):
    return ev(b, "--eval_batch_size", "0"), "--eval_batch_size 0", "must be a whole number", ">= 1"

def eval_amp_maybe(t, b, p, mp):
    return ev(b, "--amp", "maybe"), "--amp 'maybe' is not one of", "auto, True, False", "or leave it out"

def eval_on_features_of_another_size(t, b, p, mp):
    d = data(t, b)
    for s in SIZES: np.save(d / f"{s}_ims.npy", np.load(d / f"{s}_ims.npy")[..., :64])
    return ev(b, "--dataset", str(d)), "trained on 128-dimensional region features", str(b.anchor), "the features it was trained on"

def eval_a_split_that_does_not_exist(t, b, p, mp):
    return ev(b, "--split", "nosuch"), "--split 'nosuch' is not in", str(b.ds), "its splits are dev, test, train: pass one of them"

def eval_out_that_is_its_own_run(t, b, p, mp):
    a = anchor_copy(t, b)
    return ["eval", str(a), "--dataset", str(b.ds), "--out", str(a), "--overwrite"], "which this command reads", str(a), "pass another folder"

def imp(p, *more):
    return ["import", str(p.ckpt), "--vocab", str(p.vocab), *more]

def import_features_of_another_size(t, b, p, mp):
    return (imp(p, "--out", str(t / "imported"), "--dataset", str(b.ds)), "reads 32-dimensional region features",
            str(b.ds / "dev_ims.npy"), "--no-evaluate")

def import_an_empty_file(t, b, p, mp):
    (t / "model.pth.tar").write_bytes(b"")
    return (["import", str(t / "model.pth.tar"), "--vocab", str(p.vocab), "--out", str(t / "imported")], "is empty (0 bytes)",
            str(t / "model.pth.tar"), "copy the published .pth.tar file again")

def import_a_text_file(t, b, p, mp):
    (t / "model.pth.tar").write_text("404 Not Found\n")
    return (["import", str(t / "model.pth.tar"), "--vocab", str(p.vocab), "--out", str(t / "imported")],
            "is not a file torch.save wrote: it starts with b'404 '", str(t / "model.pth.tar"), "pass the published .pth.tar")

def import_a_dataset_that_does_not_exist(t, b, p, mp):
    return (imp(p, "--out", str(t / "imported"), "--dataset", str(t / "f30k_precomp")), "nor an existing folder",
            str(t / "f30k_precomp"), "pass one of those names or the path")

def import_out_that_is_a_run(t, b, p, mp):
    a = anchor_copy(t, b)
    return imp(p, "--out", str(a), "--no-evaluate"), "already holds a run directory", str(a), "add --overwrite"

def import_out_that_is_a_file(t, b, p, mp):
    (t / "imported").write_text("")
    return imp(p, "--out", str(t / "imported"), "--no-evaluate"), "is a file, not a folder", str(t / "imported"), "pass a new folder name"

def import_with_another_vocabulary(t, b, p, mp):
    Vocab([*Vocab.SPECIALS, "a", "red"]).save(t / "mine.json")
    return (["import", str(p.ckpt), "--vocab", str(t / "mine.json"), "--out", str(t / "imported"), "--no-evaluate"],
            "30 word vectors but the vocabulary", str(t / "mine.json"), "pass the vocabulary JSON the model was trained with")

def report_of_a_folder_that_does_not_exist(t, b, p, mp):
    return ["report", str(t / "nope")], "does not exist", str(t / "nope"), "pass a folder created by dbl_kit.train"

def report_of_a_run_that_did_not_finish(t, b, p, mp):
    a = anchor_copy(t, b); (a / "metrics.json").unlink()
    return ["report", str(a)], "has no test metrics to report", str(a), "not finished"

def report_with_a_damaged_config(t, b, p, mp):
    a = anchor_copy(t, b); (a / "config.json").write_bytes(b"")
    return ["report", str(a)], "is damaged (it is empty", str(a / "config.json"), "restore config.json from a copy"

def report_with_a_damaged_metrics(t, b, p, mp):
    a = anchor_copy(t, b); (a / "metrics.json").write_text('{"target": ')
    return ["report", str(a)], "is damaged (not valid JSON", str(a / "metrics.json"), "score the run again"

def report_of_a_folder_of_runs(t, b, p, mp):
    return ["report", str(b.anchor.parent)], "is a folder of runs", str(b.anchor.parent), "pass one of its run folders"

def check_with_no_split(t, b, p, mp):
    return ["check", str(b.ds), "--splits", ","], "names no split", "--splits ','", "--splits train,dev,test"

def sweep(t, csv_text=None, **kw):
    from dbl_kit.experiments import Job, Sweep
    if csv_text is not None: (t / "sweep.csv").write_text(csv_text)
    def go(): Sweep(t / "runs", t / "sweep.csv", lambda job, run: {}, **kw).run([Job("a", {"dataset": "shapes"})])
    return go

def sweep_csv_that_is_not_a_sweeps(t, b, p, mp):
    return sweep(t, "model,rsum\nvse,400\n"), "it has no run_dir column", str(t / "sweep.csv"), "pass the CSV this sweep wrote"

def sweep_csv_with_a_garbage_row(t, b, p, mp):
    return sweep(t, "run_dir\n#garbage\n"), "run '#garbage'", str(t / "sweep.csv"), "pass the sweep's own CSV"

def sweep_csv_of_another_sweep(t, b, p, mp):
    return (sweep(t, "alpha,rsum,run_dir\n", columns=["rsum", "run_dir"]), "its columns are alpha, rsum, run_dir",
            str(t / "sweep.csv"), "pass the sweep's own CSV")

def sweep_job_with_a_typo(t, b, p, mp):
    from dbl_kit.experiments import Job, Sweep
    def go(): Sweep(t / "runs", t / "sweep.csv", lambda job, run: {}).run([Job("a", {"epoch": 1})])
    return go, "Unknown parameter 'epoch'", "job 'a'", "Did you mean 'epochs'?"

def sweep_module_run_as_a_command(t, b, p, mp):
    import runpy
    def go(): runpy.run_module("dbl_kit.experiments", run_name="__main__")
    return go, "is a library, not a command", "nbs/experiments", "Sweep(runs_path, csv_path, row_of).run(jobs)"

def train_alpha_nan(t, b, p, mp):
    return (["train", "--dataset", str(b.ds), "--runs_path", str(t / "runs"), "--scenario", "offline", "--anchor_ckpt",
             str(b.anchor), "--alpha", "nan", "--embed_size", "32", "--word_dim", "32"], "alpha=nan", "not a finite number", "e.g. alpha=1.0")


COMMAND_BAD = [eval_out_that_is_another_run, eval_out_that_is_an_evaluation, eval_out_that_is_a_file, eval_out_under_a_file,
               eval_out_under_proc, eval_out_in_a_read_only_folder, eval_on_a_full_disk, eval_of_a_run_that_did_not_finish,
               eval_of_an_evaluation_folder, eval_with_a_damaged_config, eval_weights_one_short, eval_an_infinite_weight,
               eval_sims_that_is_a_text_file, eval_sims_of_integers, eval_sims_of_float16, eval_sims_with_a_nan,
               eval_sims_of_another_split, eval_batch_size_zero, eval_amp_maybe, eval_on_features_of_another_size,
               eval_a_split_that_does_not_exist, eval_out_that_is_its_own_run,
               import_features_of_another_size, import_an_empty_file, import_a_text_file, import_a_dataset_that_does_not_exist,
               import_out_that_is_a_run, import_out_that_is_a_file, import_with_another_vocabulary,
               report_of_a_folder_that_does_not_exist, report_of_a_run_that_did_not_finish, report_with_a_damaged_config,
               report_with_a_damaged_metrics, report_of_a_folder_of_runs, check_with_no_split,
               sweep_csv_that_is_not_a_sweeps, sweep_csv_with_a_garbage_row, sweep_csv_of_another_sweep, sweep_job_with_a_typo,
               sweep_module_run_as_a_command, train_alpha_nan]


def no_work(monkeypatch):
    "Scoring, importing's evaluation, a sweep's run and training fail the test if they start."
    import dbl_kit.evaluation, dbl_kit.published, dbl_kit.experiments, dbl_kit.trainer
    def work(*a, **k): raise AssertionError("work started before the input was refused")
    for mod, name in ((dbl_kit.evaluation, "evaluate_model"), (dbl_kit.published, "evaluate_model"),
                      (dbl_kit.experiments, "launch_child"), (dbl_kit.trainer, "run_stages")):
        monkeypatch.setattr(mod, name, work)


@pytest.mark.parametrize("build", COMMAND_BAD, ids=[f.__name__ for f in COMMAND_BAD])
def test_bad_input_to_a_command_is_answered_before_work(build, base, published, tmp_path, request, monkeypatch, capsys):
    as_user = getattr(build, "unprivileged", False)
    t = request.getfixturevalue("open_tmp") if as_user else tmp_path
    argv, what, where, fix = build(t, base, published, monkeypatch)
    no_work(monkeypatch)
    before = snapshot(t), snapshot(base.root), snapshot(published.root)
    capsys.readouterr()
    with unprivileged() if as_user else contextlib.nullcontext():
        if callable(argv):
            try: argv(); status, err = 0, ""
            except KitError as e: status, err = 2, f"error: {e}\n"
            except SystemExit as e: status, err = e.code, capsys.readouterr().err
        else:
            status = dbl_main(argv); err = capsys.readouterr().err
    assert status == 2, f"exit status {status}: {err}"
    assert err.startswith("error: ") and err.count("\n") == 1, f"not one line: {err}"
    for part in (what, where, fix):
        assert part in err, f"{part!r} is not in the message: {err}"
    assert (snapshot(t), snapshot(base.root), snapshot(published.root)) == before, "something on disk changed"


def test_every_command_has_its_cases():
    count = {}
    for f in COMMAND_BAD: count[f.__name__.split("_")[0]] = count.get(f.__name__.split("_")[0], 0) + 1
    count["train"] = count.get("train", 0) + len(BAD)
    assert count["eval"] >= 15 and count["import"] >= 5 and count["report"] >= 3 and count["sweep"] >= 3, count
    assert len(COMMAND_BAD) >= 25

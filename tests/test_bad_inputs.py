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

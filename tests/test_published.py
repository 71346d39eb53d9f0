"""Published checkpoints (SCAN, SGRAF, VSE-infinity, DBL reference) imported as run directories, and the published
architectures (norm="batch") in eval and training mode, checked against per-caption loops written here from the
published arithmetic. The checkpoints are built in the tests with the published key names, shapes and `opt` (random
weights, BatchNorm statistics perturbed so that a wrong mapping cannot hide), in both torch formats."""
import argparse, copy, json, math, os, pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dbl_kit
from dbl_kit.core import KitError
from dbl_kit.published import import_checkpoint, import_model, read_checkpoint
from dbl_kit.rundir import RunDir, load_model

F_DIM, R, E, W, D = 32, 36, 16, 12, 8          # features, regions (SGRAF builds BatchNorm1d(36)), embed, word, sim sizes
WORDS = [f"w{i}" for i in range(26)]
VOCAB = ["<pad>", "<start>", "<end>", "<unk>", *WORDS]


# ---- published-layout checkpoints -----------------------------------------------------------------------------------
class Weights:
    "Random tensors under published names."
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.sd = {}

    def rand(self, *shape, scale=0.3): return torch.randn(*shape, generator=self.g) * scale

    def linear(self, name, i, o, bias=True):
        self.sd[f"{name}.weight"] = self.rand(o, i, scale=1 / math.sqrt(i))
        if bias: self.sd[f"{name}.bias"] = self.rand(o, scale=0.1)

    def bn(self, name, c):
        self.sd[f"{name}.weight"] = 1 + self.rand(c, scale=0.2)
        self.sd[f"{name}.bias"] = self.rand(c, scale=0.2)
        self.sd[f"{name}.running_mean"] = self.rand(c, scale=0.3)
        self.sd[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=self.g)
        self.sd[f"{name}.num_batches_tracked"] = torch.tensor(17)

    def gru(self, name, i, h):
        for suffix in ("", "_reverse"):
            self.sd[f"{name}.weight_ih_l0{suffix}"] = self.rand(3 * h, i, scale=1 / math.sqrt(h))
            self.sd[f"{name}.weight_hh_l0{suffix}"] = self.rand(3 * h, h, scale=1 / math.sqrt(h))
            self.sd[f"{name}.bias_ih_l0{suffix}"] = self.rand(3 * h, scale=0.1)
            self.sd[f"{name}.bias_hh_l0{suffix}"] = self.rand(3 * h, scale=0.1)

    def take(self):
        sd, self.sd = self.sd, {}
        return sd


def text_part(w, rows, rnn="cap_rnn"):
    w.sd["embed.weight"] = w.rand(rows, W)
    w.gru(rnn, W, E)
    return w.take()


def make_opt(**kw):
    base = dict(data_name="f30k_precomp", img_dim=F_DIM, embed_size=E, word_dim=W, num_layers=1, bi_gru=True,
                no_imgnorm=False, no_txtnorm=False, learning_rate=2e-4, batch_size=128, margin=0.2)
    return argparse.Namespace(**{**base, **kw})


def scan_ckpt(seed=0, **opt):
    w = Weights(seed)
    w.linear("fc", F_DIM, E); img = w.take()
    return {"model": [img, text_part(w, len(VOCAB), "rnn")], "epoch": 20, "best_rsum": 480.0,
            "opt": make_opt(**{**dict(cross_attn="t2i", agg_func="LogSumExp", lambda_softmax=9.0, lambda_lse=6.0,
                                      raw_feature_norm="clipped_l2norm", precomp_enc_type="basic"), **opt})}


def sgraf_ckpt(module="SGR", seed=1, steps=3, **opt):
    w = Weights(seed)
    w.linear("fc", F_DIM, E); img = w.take()
    txt = text_part(w, len(VOCAB))
    w.linear("v_global_w.embedding_local.0", E, E); w.bn("v_global_w.embedding_local.1", R)
    w.linear("v_global_w.embedding_global.0", E, E); w.bn("v_global_w.embedding_global.1", E)
    w.linear("v_global_w.embedding_common.0", E, 1)
    w.linear("t_global_w.embedding_local.0", E, E); w.linear("t_global_w.embedding_global.0", E, E)
    w.linear("t_global_w.embedding_common.0", E, 1)
    w.linear("sim_tranloc_w", E, D); w.linear("sim_tranglo_w", E, D); w.linear("sim_eval_w", D, 1)
    if module == "SGR":
        for k in range(steps):
            for n in ("graph_query_w", "graph_key_w", "sim_graph_w"): w.linear(f"SGR_module.{k}.{n}", D, D)
    else:
        w.linear("SAF_module.attn_sim_w", D, 1); w.bn("SAF_module.bn", 1)
    return {"model": [img, txt, w.take()], "epoch": 40, "best_rsum": 500.0,
            "opt": make_opt(**{**dict(module_name=module, sgr_step=steps, sim_dim=D), **opt})}


def vse_ckpt(seed=2, **opt):
    w = Weights(seed)
    w.linear("fc", F_DIM, E)
    w.linear("mlp.layers.0", F_DIM, E // 2); w.linear("mlp.layers.1", E // 2, E)
    w.bn("mlp.bns.0", E // 2); w.bn("mlp.bns.1", E)                  # bns.1 exists in the published MLP, unused
    w.gru("gpool.gru", 32, 32); w.linear("gpool.linear", 32, 1, bias=False)
    img = {f"module.{k}": v for k, v in w.take().items()}             # a DataParallel image encoder
    w.sd["embed.weight"] = w.rand(len(VOCAB) + 1, W)                  # + <mask>
    w.gru("rnn", W, E); w.gru("gpool.gru", 32, 32); w.linear("gpool.linear", 32, 1, bias=False)
    return {"model": [img, w.take()], "epoch": 25, "best_rsum": 510.0,
            "opt": make_opt(**{**dict(precomp_enc_type="basic", optim="adam", drop=True), **opt})}


def dbl_ckpt(seed=3, mss=False, **opt):
    def one(s):
        w = Weights(s)
        w.linear("img_enc.fc", F_DIM, E)
        w.sd["txt_enc.embed.weight"] = w.rand(len(VOCAB) + 1, W); w.gru("txt_enc.cap_rnn", W, E)
        w.linear("sim_enc.sim_tran_w", E, D); w.linear("sim_enc.sim_eval_w", D, 1)
        return {f"module.{k}": v for k, v in w.take().items()}
    out = {"model": one(seed), "epoch": 30, "best_rsum": 505.0, "opt": make_opt(**{**dict(sim_dim=D, no_simnorm=False), **opt})}
    if mss: out["model_t"] = one(seed + 100)
    return out


def save(ckpt, path, zip_format=True):
    torch.save(ckpt, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("vocab") / "f30k_precomp_vocab.json"
    p.write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(VOCAB)}, "idx2word": {str(i): w for i, w in enumerate(VOCAB)},
                             "idx": len(VOCAB)}))
    return p


# ---- published-style loops (written from the published arithmetic, on the published state dicts) ------------------
def lin(sd, name, x): return x @ sd[f"{name}.weight"].t() + (sd[f"{name}.bias"] if f"{name}.bias" in sd else 0)
def l2(x, dim=-1): return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + 1e-8)
def cos(a, b): return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-8)


def bn(sd, name, x, channel_dim, training, stats=None):
    "BatchNorm1d over channels on `channel_dim`; training: batch statistics (recorded in `stats`), else the running ones."
    shape = [1] * x.dim(); shape[channel_dim] = -1
    if training:
        dims = [d for d in range(x.dim()) if d != channel_dim]
        mu, var = x.mean(dims), x.var(dims, unbiased=False)
        if stats is not None:
            n = x.numel() // x.shape[channel_dim]
            stats.setdefault(name, []).append((mu.detach(), var.detach() * n / (n - 1)))
    else:
        mu, var = sd[f"{name}.running_mean"], sd[f"{name}.running_var"]
    return (x - mu.view(shape)) / torch.sqrt(var.view(shape) + 1e-5) * sd[f"{name}.weight"].view(shape) + sd[f"{name}.bias"].view(shape)


def gru_bi(sd, name, x):
    "The published bi-GRU over one sequence `x [1, n, in]`, directions averaged: torch's GRU with the file's weights."
    h = sd[f"{name}.weight_hh_l0"].shape[1]
    g = nn.GRU(x.shape[-1], h, batch_first=True, bidirectional=True)
    g.load_state_dict({k[len(name) + 1:]: v for k, v in sd.items() if k.startswith(name + ".")})
    out = g(x)[0]
    return (out[..., :h] + out[..., h:]) / 2


def words_of(sd, prefix, tokens, rnn):
    "Per-caption word features [1, n, E] (l2-normalised) of the published text encoder."
    return l2(gru_bi(sd, f"{prefix}{rnn}", sd[f"{prefix}embed.weight"][tokens][None]))


def published_gpo(sd, prefix, feats):
    "VSE-infinity's GPO of one item `feats [n, E]`: weights from a GRU over positional encodings, over sorted features."
    n = feats.shape[0]
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, 32, 2, dtype=torch.float32) * -(math.log(10000.0) / 32))
    pe = torch.zeros(n, 32); pe[:, 0::2] = torch.sin(pos * div); pe[:, 1::2] = torch.cos(pos * div)
    scores = lin(sd, f"{prefix}gpool.linear", gru_bi(sd, f"{prefix}gpool.gru", pe[None]))[0]      # [n, 1]
    w = torch.softmax(scores / 0.1, 0)
    return (feats.sort(dim=0, descending=True)[0] * w).sum(0)


def scan_attention(query, context, smooth):
    "SGRAF/DBL's SCAN_attention: `query [n, w, E]` attends to `context [n, R, E]`; unit attended vectors [n, w, E]."
    attn = l2(F.leaky_relu(torch.bmm(context, query.transpose(1, 2)), 0.1), 2)      # [n, R, w], over words
    attn = torch.softmax(attn.transpose(1, 2) * smooth, dim=2)                      # [n, w, R], over regions
    return l2(torch.bmm(attn, context))


def published_sims(ckpt, regions, tokens, training=False, stats=None, entry="model"):
    "Scores [n_images, n_captions] the published code computes: images as one batch, then one caption at a time."
    opt, sd = vars(ckpt["opt"]), ckpt[entry]
    if isinstance(sd, list):
        parts = dict(zip(("img", "txt", "sim"), sd))
        parts["img"] = {k.replace("module.", "", 1): v for k, v in parts["img"].items()}
    else:
        flat = {k.replace("module.", "", 1): v for k, v in sd.items()}
        parts = {p: {k[len(p) + 5:]: v for k, v in flat.items() if k.startswith(p + "_enc.")} for p in ("img", "txt", "sim")}
    im, tx, sm = parts["img"], parts["txt"], parts.get("sim", {})
    n = regions.shape[0]
    if "gpool.linear.weight" in im:                                    # VSE-infinity
        x = regions.reshape(n * R, F_DIM)
        h = F.relu(bn(im, "mlp.bns.0", lin(im, "mlp.layers.0", x), 1, training, stats))
        feats = (lin(im, "fc", regions) + lin(im, "mlp.layers.1", h).view(n, R, E))
        img = l2(torch.stack([published_gpo(im, "", f) for f in feats]))
        cap = l2(torch.stack([published_gpo(tx, "", gru_bi(tx, "rnn", tx["embed.weight"][t][None])[0]) for t in tokens]))
        return img @ cap.t()
    img = l2(lin(im, "fc", regions))                                  # [n, R, E]
    rnn = "rnn" if "rnn.weight_ih_l0" in tx else "cap_rnn"
    if "cross_attn" in opt:                                            # SCAN
        cols = []
        for t in tokens:
            words = words_of(tx, "", t, rnn).repeat(n, 1, 1)
            if opt["cross_attn"] == "t2i":
                s = l2(F.leaky_relu(torch.bmm(img, words.transpose(1, 2)), 0.1), 2)
                ctx = torch.bmm(torch.softmax(s.transpose(1, 2) * opt["lambda_softmax"], 2), img)
                sc = cos(words, ctx)
            else:
                s = l2(F.leaky_relu(torch.bmm(words, img.transpose(1, 2)), 0.1), 2)
                ctx = torch.bmm(torch.softmax(s.transpose(1, 2) * opt["lambda_softmax"], 2), words)
                sc = cos(img, ctx)
            lse = opt["lambda_lse"]
            cols.append(sc.mean(1) if opt["agg_func"] == "Mean" else torch.log(torch.exp(sc * lse).sum(1)) / lse)
        return torch.stack(cols, 1)
    if "sim_tran_w.weight" in sm:                                      # DBL reference
        cols = []
        for t in tokens:
            words = words_of(tx, "", t, rnn).repeat(n, 1, 1)
            rep = l2(lin(sm, "sim_tran_w", (scan_attention(words, img, 9.0) - words) ** 2))
            cols.append(torch.tanh(lin(sm, "sim_eval_w", l2(rep.mean(1)))).squeeze(-1))
        return torch.stack(cols, 1)
    # SGRAF: VisualSA over all images once, then one caption at a time
    v = "v_global_w."
    l_emb = torch.tanh(bn(sm, v + "embedding_local.1", lin(sm, v + "embedding_local.0", img), 1, training, stats))
    g_emb = torch.tanh(bn(sm, v + "embedding_global.1", lin(sm, v + "embedding_global.0", img.mean(1)), 1, training, stats))
    a = torch.softmax(lin(sm, v + "embedding_common.0", l_emb * g_emb[:, None]).squeeze(2), 1)
    img_glo = l2((a[..., None] * img).sum(1))
    cols = []
    for t in tokens:
        cap = words_of(tx, "", t, rnn)                                 # [1, w, E]
        tl = torch.tanh(lin(sm, "t_global_w.embedding_local.0", cap))
        tg = torch.tanh(lin(sm, "t_global_w.embedding_global.0", cap.mean(1)))
        ta = torch.softmax(lin(sm, "t_global_w.embedding_common.0", tl * tg[:, None]).squeeze(2), 1)
        cap_glo = l2((ta[..., None] * cap).sum(1))
        words = cap.repeat(n, 1, 1)
        sim_loc = l2(lin(sm, "sim_tranloc_w", (scan_attention(words, img, 9.0) - words) ** 2))
        sim_glo = l2(lin(sm, "sim_tranglo_w", (img_glo - cap_glo) ** 2))
        x = torch.cat([sim_glo[:, None], sim_loc], 1)
        if opt["module_name"] == "SGR":
            for k in range(opt["sgr_step"]):
                q, key = lin(sm, f"SGR_module.{k}.graph_query_w", x), lin(sm, f"SGR_module.{k}.graph_key_w", x)
                x = F.relu(lin(sm, f"SGR_module.{k}.sim_graph_w", torch.bmm(torch.softmax(torch.bmm(q, key.transpose(1, 2)), -1), x)))
            vec = x[:, 0]
        else:
            z = bn(sm, "SAF_module.bn", lin(sm, "SAF_module.attn_sim_w", x).permute(0, 2, 1), 1, training, stats)
            g = torch.sigmoid(z)
            g = g / (g.abs().sum(-1, keepdim=True) + 1e-8)
            vec = l2(torch.matmul(g, x).squeeze(1))
        cols.append(torch.sigmoid(lin(sm, "sim_eval_w", vec)).squeeze(-1))
    return torch.stack(cols, 1)


# ---- inputs ---------------------------------------------------------------------------------------------------------
LENGTHS = [7, 3, 5, 3, 6, 4, 4]     # tokens with <start> and <end>


def make_inputs(n_images=6, seed=5, vocab_rows=len(VOCAB)):
    g = torch.Generator().manual_seed(seed)
    regions = torch.randn(n_images, R, F_DIM, generator=g)
    tokens = [torch.cat([torch.tensor([1]), torch.randint(4, vocab_rows, (n - 2,), generator=g), torch.tensor([2])])
              for n in LENGTHS]
    return regions, tokens


def kit_sims(model, regions, tokens):
    lengths = torch.tensor([len(t) for t in tokens])
    padded = torch.zeros(len(tokens), int(lengths.max()), dtype=torch.long)
    for j, t in enumerate(tokens): padded[j, :len(t)] = t
    return model.similarity(model.encode_images(regions), model.encode_texts(padded, lengths))


CASES = {
    "scan_t2i_lse": lambda: scan_ckpt(),
    "scan_t2i_mean": lambda: _scan(agg_func="Mean", lambda_softmax=6.0),
    "scan_i2t_lse": lambda: _scan(cross_attn="i2t", agg_func="LogSumExp", lambda_softmax=4.0, lambda_lse=5.0),
    "sgr": lambda: sgraf_ckpt("SGR"),
    "sgr_2steps": lambda: sgraf_ckpt("SGR", steps=2),
    "saf": lambda: sgraf_ckpt("SAF"),
    "vse": lambda: vse_ckpt(),
    "dbl_oas": lambda: dbl_ckpt(),
}


def _scan(**opt):
    c = scan_ckpt()
    c["opt"] = argparse.Namespace(**{**vars(c["opt"]), **opt})
    return c


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("case", list(CASES))
def test_imported_checkpoint_scores_as_published(case, zip_format, tmp_path, vocab_file):
    ckpt = CASES[case]()
    path = save(ckpt, tmp_path / "model_best.pth.tar", zip_format)
    model, vocab, info = import_model(path, vocab_file)
    assert info["format"] == ("zip" if zip_format else "legacy")
    test_vocab = len(VOCAB) + (1 if case in ("vse", "dbl_oas") else 0)
    assert len(vocab) == test_vocab and (test_vocab == len(VOCAB) or vocab.idx2word[-1] == "<mask>")
    regions, tokens = make_inputs(vocab_rows=len(VOCAB))
    with torch.no_grad():
        ref = published_sims(ckpt, regions, tokens)
        got = kit_sims(model, regions, tokens)
    diff = float((got - ref).abs().max())
    print(f"{case} ({info['format']}): max |kit - published loop| = {diff:.2e}")
    assert diff < 1e-5, diff


def test_dbl_oss_and_mss_branches(tmp_path, vocab_file):
    ckpt = dbl_ckpt(mss=True)
    path = save(ckpt, tmp_path / "model_best.pth.tar")
    regions, tokens = make_inputs()
    for entry in ("model", "model_t"):
        model, _, info = import_model(path, vocab_file, branch=None if entry == "model" else entry)
        assert info["entry"] == entry
        with torch.no_grad():
            diff = float((kit_sims(model, regions, tokens) - published_sims(ckpt, regions, tokens, entry=entry)).abs().max())
        print(f"dbl mss {entry}: {diff:.2e}")
        assert diff < 1e-5
    with pytest.raises(KitError, match="model_t"):
        import_model(save(dbl_ckpt(), tmp_path / "model2_best.pth.tar"), vocab_file, branch="model_t")   # an OSS file


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, nn.Dropout): m.p = 0.0
    if hasattr(model.img_enc, "region_drop"): model.img_enc.region_drop = 0.0
    return model


@pytest.mark.parametrize("case", ["sgr", "saf", "vse"])
def test_training_mode_batch_statistics_and_running_statistics(case, tmp_path, vocab_file):
    "In training mode: the scores with batch statistics, and the running statistics after one training forward."
    ckpt = CASES[case]()
    model, _, _ = import_model(save(ckpt, tmp_path / "m.pth.tar"), vocab_file)
    model = _no_dropout(model).train()
    if case == "saf": model.sim_budget_mb = 4 * model.pair_floats(R, 8, grad=True) / 2**20   # many caption blocks
    regions, tokens = make_inputs(n_images=7)
    stats = {}
    ref = published_sims(ckpt, regions, tokens, training=True, stats=stats)
    got = kit_sims(model, regions, tokens)                          # with gradients, as a training step
    diff = float((got - ref).detach().abs().max())
    print(f"{case} training mode: max score difference {diff:.2e}")
    assert diff < 1e-5
    sd = ckpt["model"][2] if case != "vse" else {k.replace("module.", "", 1): v for k, v in ckpt["model"][0].items()}
    kit = {"sgr": {"v_global_w.embedding_local.1": "img_global.local.1", "v_global_w.embedding_global.1": "img_global.mean.1"},
           "saf": {"v_global_w.embedding_local.1": "img_global.local.1", "v_global_w.embedding_global.1": "img_global.mean.1",
                   "SAF_module.bn": "gate_norm"},
           "vse": {"mlp.bns.0": "img_enc.mlp.1"}}[case]
    state = model.state_dict()
    for pub, name in kit.items():
        mean, var = sd[f"{pub}.running_mean"].clone(), sd[f"{pub}.running_var"].clone()
        for mu, v in stats[pub]:                                      # one update per published forward, in order
            mean, var = 0.9 * mean + 0.1 * mu, 0.9 * var + 0.1 * v
        expected_updates = len(stats[pub])
        if case == "saf" and pub == "SAF_module.bn": assert expected_updates == len(tokens)   # one per caption
        tol = 1e-5 * float(var.abs().max())
        torch.testing.assert_close(state[f"{name}.running_mean"], mean, atol=1e-6, rtol=0)
        torch.testing.assert_close(state[f"{name}.running_var"], var, atol=tol, rtol=0)
        assert int(state[f"{name}.num_batches_tracked"]) == 17 + expected_updates
        print(f"{case} {name}: {expected_updates} running-statistics update(s) as published")


# ---- safety -----------------------------------------------------------------------------------------------------------
class Payload:
    "An object whose unpickling would write a file."
    def __init__(self, target): self.target = str(target)
    def __reduce__(self): return (Path.write_text, (Path(self.target), "pwned"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, zip_format, vocab_file):
    marker = tmp_path / "written_by_the_pickle.txt"
    ckpt = sgraf_ckpt("SGR")
    ckpt["opt"] = Payload(marker)
    path = save(ckpt, tmp_path / "evil.pth.tar", zip_format)
    assert not marker.exists()
    with pytest.raises(KitError, match=r"refused: its pickle asks for the global .*nothing in it ran"):
        import_checkpoint(path, vocab_file, tmp_path / "run")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()
    pickle.loads(pickle.dumps(Payload(marker)))                     # the payload does work when unpickled unsafely
    assert marker.read_text() == "pwned"


class Thing:
    "A harmless class: still not something a checkpoint of weights and options needs."


def test_other_objects_are_refused(tmp_path, vocab_file):
    ckpt = scan_ckpt(); ckpt["extra"] = Thing()
    with pytest.raises(KitError, match="Thing"):
        read_checkpoint(save(ckpt, tmp_path / "thing.pth.tar"))


# ---- refusals ---------------------------------------------------------------------------------------------------------
REFUSED = [
    ("no_imgnorm", lambda: _scan(no_imgnorm=True), "no_imgnorm"),
    ("no_txtnorm", lambda: sgraf_ckpt("SGR", no_txtnorm=True), "no_txtnorm"),
    ("no_simnorm", lambda: dbl_ckpt(no_simnorm=True), "no_simnorm"),
    ("num_layers", lambda: _scan(num_layers=2), "num_layers"),
    ("raw_feature_norm", lambda: _scan(raw_feature_norm="softmax"), "raw_feature_norm"),
    ("agg_func", lambda: _scan(agg_func="Max"), "agg_func"),
    ("cross_attn", lambda: _scan(cross_attn="both"), "cross_attn"),
    ("precomp_enc_type", lambda: vse_ckpt(precomp_enc_type="backbone"), "precomp_enc_type"),
    ("module_name", lambda: sgraf_ckpt("SGR", module_name="AVE"), "module_name"),
    ("sgr_step", lambda: sgraf_ckpt("SGR", sgr_step=4), "sgr_step"),
    ("opt vs weights", lambda: _scan(embed_size=64), "embed_size"),
]


def _one_directional():
    c = scan_ckpt()
    c["model"][1] = {k: v for k, v in c["model"][1].items() if not k.endswith("_reverse")}
    c["opt"].bi_gru = False
    return c


def _weight_norm():
    c = scan_ckpt()
    c["model"][0] = {"fc.weight_g": torch.ones(E, 1), "fc.weight_v": c["model"][0]["fc.weight"], "fc.bias": c["model"][0]["fc.bias"]}
    return c


REFUSED += [("bi_gru", _one_directional, "bi_gru"), ("weight_norm layer", _weight_norm, "fc.weight_g")]


@pytest.mark.parametrize("name,make,words", REFUSED, ids=[r[0] for r in REFUSED])
def test_unrepresentable_options_are_refused_by_name(name, make, words, tmp_path, vocab_file):
    with pytest.raises(KitError, match=words):
        import_checkpoint(save(make(), tmp_path / "c.pth.tar"), vocab_file, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_vocabulary_mismatch_and_other_refusals(tmp_path, vocab_file):
    small = tmp_path / "small_vocab.json"
    words = VOCAB[:-3]
    small.write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(words)}, "idx2word": {str(i): w for i, w in enumerate(words)},
                                 "idx": len(words)}))
    path = save(sgraf_ckpt("SAF"), tmp_path / "saf.pth.tar")
    with pytest.raises(KitError, match=f"{len(VOCAB)} word vectors but the vocabulary .* has {len(words)} words"):
        import_checkpoint(path, small, tmp_path / "run")
    with pytest.raises(KitError, match="does not exist"):
        import_checkpoint(tmp_path / "nope.pth.tar", vocab_file, tmp_path / "run")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(KitError, match="is not a file torch.save wrote"):
        import_checkpoint(tmp_path / "junk.pth.tar", vocab_file, tmp_path / "run")
    with pytest.raises(KitError, match="no 'model' entry"):
        import_checkpoint(save({"state_dict": {}}, tmp_path / "other.pth"), vocab_file, tmp_path / "run")
    no_opt = sgraf_ckpt("SAF"); del no_opt["opt"]
    with pytest.raises(KitError, match="has no 'opt'"):
        import_checkpoint(save(no_opt, tmp_path / "no_opt.pth.tar"), vocab_file, tmp_path / "run")
    with pytest.raises(KitError, match="branch='student'"):
        import_checkpoint(path, vocab_file, tmp_path / "run", branch="student")
    bad = sgraf_ckpt("SGR"); bad["model"][2]["mystery.weight"] = torch.zeros(3)
    with pytest.raises(KitError, match="mystery.weight"):
        import_checkpoint(save(bad, tmp_path / "bad.pth.tar"), vocab_file, tmp_path / "run")
    (tmp_path / "taken").mkdir(); (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(KitError, match="is a folder of other files"):
        import_checkpoint(path, vocab_file, tmp_path / "taken")


# ---- the run directory, evaluation, report, offline DBL from the imported anchor ----------------------------------
def write_f30k(root, seed=0, n=(40, 10, 10)):
    "A small generated f30k_precomp folder: 36 x 2048 regions per image, five captions each from the test vocabulary."
    folder = Path(root) / "f30k_precomp"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for split, k in zip(("train", "dev", "test"), n):
        np.save(folder / f"{split}_ims.npy", rng.standard_normal((k, 36, 2048)).astype(np.float32))
        caps = [" ".join(rng.choice(WORDS, rng.integers(3, 8))) for _ in range(5 * k)]
        (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n")
    return folder


def test_import_writes_a_run_directory_that_the_kit_reads(tmp_path, vocab_file):
    global F_DIM
    data = tmp_path / "data"; write_f30k(data)
    old, F_DIM = F_DIM, 2048
    try: ckpt = sgraf_ckpt("SGR")
    finally: F_DIM = old
    path = save(ckpt, tmp_path / "model_best.pth.tar")
    run_dir = import_checkpoint(path, vocab_file, tmp_path / "imported_sgr", data_path=data)
    run = RunDir(run_dir)
    src = run.config["source"]
    assert src["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest() and src["opt"]["module_name"] == "SGR"
    assert run.config["dataset"] == "f30k" and run.config["n_regions"] == 36
    model, info = load_model(run_dir)
    assert info["model"]["model"] == "sgr" and info["model"]["norm"] == "batch"
    m = run.metrics["branches"][run.target]
    assert 0 <= m["rsum"] <= 600 and run.sims(run.target, "test").shape == (10, 50)
    from dbl_kit.report import report
    assert "imported" in report(run_dir)
    # offline DBL from the imported anchor: backbone, sizes, vocabulary and dataset (opt.data_name) from the anchor
    common = dict(scenario="offline", anchor_ckpt=str(run_dir), data_path=str(data), runs_path=str(tmp_path / "runs"),
                  epochs=1, batch_size=25, progress=False, threads=1, eval_batch_size=64)
    r = dbl_kit.train(**common)
    cfg = RunDir(r.run_dir).config
    assert (cfg["model"], cfg["embed_size"], cfg["word_dim"], cfg["sim_dim"], cfg["dataset"]) == ("sgr", E, W, D, "f30k")
    assert np.isfinite(r.metrics["rsum"])
    r2 = dbl_kit.train(**common, dataset="f30k", run_name="explicit")
    assert RunDir(r2.run_dir).config["dataset"] == "f30k"
    with pytest.raises(KitError, match="embed_size"):
        dbl_kit.train(**common, embed_size=2 * E, run_name="conflict")
    with pytest.raises(KitError, match="model"):
        dbl_kit.train(**common, model="saf", run_name="conflict2")

"""Brute-force references, written once, outside the library: the tests compare the kit with these, and
`python -m dbl_kit.bench metrics|similarity` times the kit against them (it loads this file from the repository
checkout, or from `--reference PATH`).

Each function computes its quantity as directly as the definition reads, one query (or one caption) at a time, in
plain loops; none calls the kit's implementation of the same quantity. The retrieval references work in float64;
the interaction-head references use the model's own layers (its weights) but spell out every step of the published
per-caption computation themselves.

Conventions: a similarity matrix `sims [n_images, n_images * k]` has image `i`'s `k` captions in columns
`i * k ... i * k + k - 1`; ranks are 1-based.
"""
import numpy as np
import torch
import torch.nn.functional as F

METRIC_KEYS = ["i2t_r1", "i2t_r5", "i2t_r10", "i2t_medr", "i2t_meanr",
               "t2i_r1", "t2i_r5", "t2i_r10", "t2i_medr", "t2i_meanr", "rsum"]


# ---- retrieval: ranks, metrics, per-query statistics ------------------------------------------------------------------
def ranks(sims, k=5):
    """`(i2t, t2i)` ranks by counting, ties against the query: an image's rank is 1 + the number of other images'
    captions scoring at least its best own caption; a caption's rank is 1 + the number of other images scoring at
    least its own image."""
    sims = np.asarray(sims, dtype=np.float64)
    n_img, n_cap = sims.shape
    i2t = np.zeros(n_img, dtype=np.int64)
    for i in range(n_img):
        own = np.arange(n_cap) // k == i
        i2t[i] = 1 + np.sum(sims[i, ~own] >= sims[i, own].max())
    t2i = np.zeros(n_cap, dtype=np.int64)
    for j in range(n_cap):
        others = np.arange(n_img) != j // k
        t2i[j] = 1 + np.sum(sims[others, j] >= sims[j // k, j])
    return i2t, t2i


def argsort_ranks(sims, k=5):
    """`(i2t, t2i)` ranks as the VSE++/SCAN evaluation code finds them: sort each query's scores (`np.argsort`, then
    reversed: best first) and take the position of the first right item. The order among equal scores is the sort's,
    so use it on matrices without ties (continuous random scores)."""
    sims = np.asarray(sims, dtype=np.float64)
    n_img, n_cap = sims.shape
    i2t = np.zeros(n_img, dtype=np.int64)
    for i in range(n_img):
        order = np.argsort(sims[i])[::-1]
        i2t[i] = 1 + min(np.where(order == c)[0][0] for c in range(i * k, i * k + k))
    t2i = np.zeros(n_cap, dtype=np.int64)
    for j in range(n_cap):
        order = np.argsort(sims[:, j])[::-1]
        t2i[j] = 1 + np.where(order == j // k)[0][0]
    return i2t, t2i


def metrics(i2t, t2i):
    """The retrieval metrics of two rank lists, keys in `METRIC_KEYS` order: R@K = the percentage of queries ranked
    at most K, medr = the floor of the median rank, meanr = the mean rank, rsum = the sum of the six recalls."""
    out = {}
    for d, r in (("i2t", i2t), ("t2i", t2i)):
        r = [int(x) for x in r]
        for K in (1, 5, 10):
            out[f"{d}_r{K}"] = 100.0 * sum(1 for x in r if x <= K) / len(r)
        s, mid = sorted(r), len(r) // 2
        out[f"{d}_medr"] = float((s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2) // 1)
        out[f"{d}_meanr"] = sum(r) / len(r)
    out["rsum"] = sum(out[f"{d}_r{K}"] for d in ("i2t", "t2i") for K in (1, 5, 10))
    return out


def retrieval_metrics(sims, k=5):
    "`metrics` of the counting `ranks` (ties against the query): the kit's protocol, one query at a time."
    return metrics(*ranks(sims, k))


def triplet_stats(sims, k=5):
    """Per query `(positive, hardest negative, relative = positive - hardest negative, rank)`, as
    `{"i2t": [...], "t2i": [...]}`: an image's positive is its best own caption, its negatives the other images'
    captions; a caption's positive is its own image, its negatives the other images. Rank: ties against the query."""
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


# ---- interaction heads: the published per-caption loop (SCAN, SGRAF, DBL) --------------------------------------------
def unit(x, dim=-1):
    "`x` scaled to unit length along `dim` (norms clamped at 1e-8)."
    return x / x.norm(dim=dim, keepdim=True).clamp_min(1e-8)


def cosine(a, b):
    "Cosine similarity along the last dimension."
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-8)


def pool(x, agg, lse):
    "SCAN's pooling over the second dimension: the mean (`agg='avg'`) or log-sum-exp with temperature `lse`."
    return x.mean(1) if agg == "avg" else torch.log(torch.exp(lse * x).sum(1)) / lse


def attended_regions(imgs, words, lam):
    "For each word of `words [n, w, E]` (one caption repeated), the attention-weighted sum of the regions of `imgs [n, R, E]`."
    s = unit(F.leaky_relu(torch.bmm(imgs, words.transpose(1, 2)), 0.1), dim=2)   # [n, R, w], normalised over words
    a = torch.softmax(lam * s, dim=1)                                             # over regions
    return torch.bmm(a.transpose(1, 2), imgs)                                     # [n, w, E]


def self_attended(m, feats):
    "SGRAF's global vector of `feats [n, k, E]` (all valid): items weighted by their agreement with the mean item."
    w = torch.softmax(m.score(m.local(feats) * m.mean(feats.mean(1))[:, None]).squeeze(-1), 1)
    return unit((w[..., None] * feats).sum(1))


def head_scores(model, imgs, caption, img_glo=None):
    """Scores [n] of one caption `caption [1, w, E]` (its real words only), repeated over `imgs [n, R, E]`, through the
    head of `model` (`scan_t2i`, `scan_i2t`, `ave`, `sgr`, `saf`). `img_glo`: the images' global vectors (sgr, saf),
    computed here when not given."""
    name, n = model.config["model"], len(imgs)
    words = caption.repeat(n, 1, 1)
    if name == "scan_t2i":
        return pool(cosine(words, attended_regions(imgs, words, model.lam)), model.agg, model.lse)
    if name == "scan_i2t":
        s = unit(F.leaky_relu(torch.bmm(words, imgs.transpose(1, 2)), 0.1), dim=2)   # [n, w, R], normalised over regions
        a = torch.softmax(model.lam * s, dim=1)                                       # over words
        return pool(cosine(imgs, torch.bmm(a.transpose(1, 2), words)), model.agg, model.lse)
    local = unit(model.sim_local((unit(attended_regions(imgs, words, model.lam)) - words) ** 2))   # [n, w, D]
    if name == "ave":
        return torch.tanh(model.sim_eval(unit(local.mean(1)))).squeeze(-1)
    if img_glo is None: img_glo = self_attended(model.img_global, imgs)
    glo = unit(model.sim_global((img_glo - self_attended(model.txt_global, caption)) ** 2))
    x = torch.cat([glo[:, None], local], 1)                                       # [n, w + 1, D]
    if name == "sgr":
        for step in model.steps:
            attn = torch.softmax(step.query(x) @ step.key(x).transpose(1, 2), -1)
            x = F.relu(step.out(attn @ x))
        return torch.sigmoid(model.sim_eval(x[:, 0])).squeeze(-1)
    z, norm = model.gate(x).squeeze(-1), model.gate_norm
    if model.norm == "layer":   # each pair over its own nodes
        z = (z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True) + norm.eps) * norm.scale + norm.shift
    elif model.training:        # published BatchNorm1d(1): this caption's statistics over all images x nodes
        z = (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + norm.eps) * norm.weight + norm.bias
    else:
        z = (z - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias
    g = torch.sigmoid(z)
    g = g / (g.sum(1, keepdim=True) + 1e-8)
    return torch.sigmoid(model.sim_eval(unit((g[..., None] * x).sum(1)))).squeeze(-1)


def similarity(model, img, cap, shard=100):
    """The published evaluation loop: for every shard of `shard` images (their global vectors once per shard), for
    every caption (trimmed to its length), `head_scores` of the caption repeated over the shard; `[n_images,
    n_captions]`. `img`, `cap`: token sets (`.features`, `.lengths`). In training mode (batch statistics over all
    images, as the published training step) there is one shard."""
    if model.training: shard = len(img)
    needs_glo = model.config["model"] in ("sgr", "saf")
    blocks = []
    for s in range(0, len(img), shard):
        imgs = img.features[s:s + shard]
        img_glo = self_attended(model.img_global, imgs) if needs_glo else None
        blocks.append(torch.stack([head_scores(model, imgs, cap.features[j:j + 1, :int(cap.lengths[j])], img_glo)
                                   for j in range(len(cap))], 1))
    return torch.cat(blocks, 0)

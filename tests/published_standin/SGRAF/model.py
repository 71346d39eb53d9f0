"""Stand-in for SGRAF's model.py (python3.6 branch), for dbl-kit's tests: the layer names of the published state dicts
and the published arithmetic, one caption at a time."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def unit(x, dim=-1):
    "x over its l2 norm (+1e-8)."
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + 1e-8)


def attend(words, regions, lam=9.0):
    "Each word's attended image vector: regions weighted by softmax over regions of the word-normalised LeakyReLU dots."
    dots = unit(F.leaky_relu(regions @ words.transpose(1, 2), 0.1), dim=2)      # [n, R, w]
    weights = torch.softmax(lam * dots, dim=1)
    return unit(weights.transpose(1, 2) @ regions)                                # [n, w, E]


class EncoderImage(nn.Module):
    def __init__(self, img_dim, embed_size, no_imgnorm=False):
        super().__init__()
        self.fc = nn.Linear(img_dim, embed_size)

    def forward(self, images):
        return unit(self.fc(images))


class EncoderText(nn.Module):
    def __init__(self, vocab_size, word_dim, embed_size, num_layers, use_bi_gru=False, no_txtnorm=False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.dropout = nn.Dropout(0.4)
        self.cap_rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=use_bi_gru)

    def forward(self, captions, lengths):
        out, _ = self.cap_rnn(pack_padded_sequence(self.dropout(self.embed(captions)), lengths, batch_first=True))
        out, _ = pad_packed_sequence(out, batch_first=True)
        half = out.size(2) // 2
        return unit((out[:, :, :half] + out[:, :, half:]) / 2)


class GlobalSA(nn.Module):
    "VisualSA (with BatchNorm over `n_norm` region slots) or TextSA (without): items weighted by agreement with the mean."
    def __init__(self, dim, n_norm=None):
        super().__init__()
        bn = (lambda c: [nn.BatchNorm1d(c)]) if n_norm else (lambda c: [])
        self.embedding_local = nn.Sequential(nn.Linear(dim, dim), *bn(n_norm), nn.Tanh(), nn.Dropout(0.4))
        self.embedding_global = nn.Sequential(nn.Linear(dim, dim), *bn(dim), nn.Tanh(), nn.Dropout(0.4))
        self.embedding_common = nn.Sequential(nn.Linear(dim, 1))

    def forward(self, local):
        g = self.embedding_global(local.mean(1))
        w = torch.softmax(self.embedding_common(self.embedding_local(local) * g[:, None]).squeeze(2), dim=1)
        return unit((w[:, :, None] * local).sum(1))


class GraphReasoning(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.graph_query_w, self.graph_key_w, self.sim_graph_w = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        edges = torch.softmax(self.graph_query_w(x) @ self.graph_key_w(x).transpose(1, 2), dim=-1)
        return F.relu(self.sim_graph_w(edges @ x))


class AttentionFiltration(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn_sim_w, self.bn = nn.Linear(d, 1), nn.BatchNorm1d(1)

    def forward(self, x):
        gate = torch.sigmoid(self.bn(self.attn_sim_w(x).permute(0, 2, 1)))      # [n, 1, nodes]
        gate = gate / (gate.abs().sum(-1, keepdim=True) + 1e-8)
        return unit((gate @ x).squeeze(1))


class EncoderSimilarity(nn.Module):
    def __init__(self, embed_size, sim_dim, module_name='SGR', sgr_step=3):
        super().__init__()
        self.module_name = module_name
        self.v_global_w, self.t_global_w = GlobalSA(embed_size, 36), GlobalSA(embed_size)
        self.sim_tranloc_w, self.sim_tranglo_w = nn.Linear(embed_size, sim_dim), nn.Linear(embed_size, sim_dim)
        self.sim_eval_w = nn.Linear(sim_dim, 1)
        if module_name == 'SGR':
            self.SGR_module = nn.ModuleList(GraphReasoning(sim_dim) for _ in range(sgr_step))
        else:
            self.SAF_module = AttentionFiltration(sim_dim)

    def forward(self, img_emb, cap_emb, cap_lens):
        n = img_emb.size(0)
        img_glo = self.v_global_w(img_emb)
        columns = []
        for j in range(cap_emb.size(0)):
            cap = cap_emb[j, :int(cap_lens[j])][None]
            words = cap.repeat(n, 1, 1)
            local = unit(self.sim_tranloc_w((attend(words, img_emb) - words) ** 2))
            glo = unit(self.sim_tranglo_w((img_glo - self.t_global_w(cap)) ** 2))
            nodes = torch.cat([glo[:, None], local], 1)
            if self.module_name == 'SGR':
                for step in self.SGR_module: nodes = step(nodes)
                vec = nodes[:, 0]
            else:
                vec = self.SAF_module(nodes)
            columns.append(torch.sigmoid(self.sim_eval_w(vec)))
        return torch.cat(columns, 1)


class ContrastiveLoss(nn.Module):
    def __init__(self, margin=0, max_violation=False):
        super().__init__()
        self.margin, self.max_violation = margin, max_violation

    def forward(self, scores):
        pos = scores.diag()
        mask = torch.eye(scores.size(0)) > .5
        if torch.cuda.is_available():
            mask = mask.cuda()
        cost_s = (self.margin + scores - pos[:, None]).clamp(min=0).masked_fill(mask, 0)
        cost_im = (self.margin + scores - pos[None, :]).clamp(min=0).masked_fill(mask, 0)
        if self.max_violation:
            return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()
        return cost_s.sum() + cost_im.sum()


class SGRAF(object):
    def __init__(self, opt):
        self.grad_clip = opt.grad_clip
        self.img_enc = EncoderImage(opt.img_dim, opt.embed_size)
        self.txt_enc = EncoderText(opt.vocab_size, opt.word_dim, opt.embed_size, opt.num_layers, use_bi_gru=opt.bi_gru)
        self.sim_enc = EncoderSimilarity(opt.embed_size, opt.sim_dim, opt.module_name, opt.sgr_step)
        self.criterion = ContrastiveLoss(margin=opt.margin, max_violation=opt.max_violation)
        self.params = list(self.txt_enc.parameters()) + list(self.img_enc.parameters()) + list(self.sim_enc.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=opt.learning_rate)

    def state_dict(self):
        return [self.img_enc.state_dict(), self.txt_enc.state_dict(), self.sim_enc.state_dict()]

    def train_start(self):
        for m in (self.img_enc, self.txt_enc, self.sim_enc): m.train()

    def val_start(self):
        for m in (self.img_enc, self.txt_enc, self.sim_enc): m.eval()

    def forward_emb(self, images, captions, lengths):
        return self.img_enc(images), self.txt_enc(captions, lengths), lengths

    def forward_sim(self, img_embs, cap_embs, cap_lens):
        return self.sim_enc(img_embs, cap_embs, cap_lens)

    def train_emb(self, images, captions, lengths, ids=None, *args):
        img, cap, lens = self.forward_emb(images, captions, lengths)
        sims = self.forward_sim(img, cap, lens)
        self.optimizer.zero_grad()
        loss = self.criterion(sims)
        self.logger.update('Loss', loss.item(), sims.size(0))
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()

"""Stand-in for VSE-infinity's lib/vse.py (bigru branch, precomputed regions), for dbl-kit's tests: the layer names of
the published state dicts, GPO pooling written one item at a time."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def unit(x, dim=-1):
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + 1e-8)


class GPO(nn.Module):
    "Generalised pooling: weights over sorted positions from a bi-GRU over position encodings."
    def __init__(self, d_pe=32, d_hidden=32):
        super().__init__()
        self.d_pe = d_pe
        self.gru = nn.GRU(d_pe, d_hidden, 1, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(d_hidden, 1, bias=False)

    def positions(self, n):
        pos = torch.arange(n, dtype=torch.float)[:, None]
        freq = torch.exp(torch.arange(0, self.d_pe, 2, dtype=torch.float) * -(math.log(10000.0) / self.d_pe))
        pe = torch.zeros(n, self.d_pe)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        return pe

    def forward(self, features, lengths):
        pooled = []
        for b in range(features.size(0)):
            n = int(lengths[b])
            out = self.gru(self.positions(n)[None].to(features.device))[0][0]
            half = out.size(1) // 2
            w = torch.softmax(self.linear((out[:, :half] + out[:, half:]) / 2).squeeze(1) / 0.1, 0)
            pooled.append((features[b, :n].sort(dim=0, descending=True)[0] * w[:, None]).sum(0))
        return torch.stack(pooled), None


class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, num_layers=2):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(input_dim, hidden_dim), nn.Linear(hidden_dim, output_dim)])
        self.bns = nn.ModuleList([nn.BatchNorm1d(hidden_dim), nn.BatchNorm1d(output_dim)])   # the second is never used

    def forward(self, x):
        B, N, D = x.shape
        h = F.relu(self.bns[0](self.layers[0](x.reshape(B * N, D))))
        return self.layers[1](h).view(B, N, -1)


class EncoderImageAggr(nn.Module):
    def __init__(self, img_dim, embed_size):
        super().__init__()
        self.fc = nn.Linear(img_dim, embed_size)
        self.mlp = MLP(img_dim, embed_size // 2, embed_size, 2)
        self.gpool = GPO(32, 32)

    def forward(self, images, image_lengths):
        return unit(self.gpool(self.fc(images) + self.mlp(images), image_lengths)[0])


class EncoderText(nn.Module):
    def __init__(self, vocab_size, embed_size, word_dim, num_layers):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.gpool = GPO(32, 32)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=True)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, out_len = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        half = out.size(2) // 2
        return unit(self.gpool((out[:, :, :half] + out[:, :, half:]) / 2, out_len)[0])


class ContrastiveLoss(nn.Module):
    def __init__(self, opt, margin=0, max_violation=False):
        super().__init__()
        self.margin, self.max_violation = margin, max_violation

    def forward(self, im, s):
        scores = im @ s.t()
        pos = scores.diag()
        mask = torch.eye(scores.size(0)) > .5
        if torch.cuda.is_available():
            mask = mask.cuda()
        cost_s = (self.margin + scores - pos[:, None]).clamp(min=0).masked_fill(mask, 0)
        cost_im = (self.margin + scores - pos[None, :]).clamp(min=0).masked_fill(mask, 0)
        if self.max_violation:
            return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()
        return cost_s.sum() + cost_im.sum()


class VSEModel(object):
    def __init__(self, opt):
        self.grad_clip = opt.grad_clip
        self.img_enc = EncoderImageAggr(opt.img_dim, opt.embed_size)
        self.txt_enc = EncoderText(opt.vocab_size, opt.embed_size, opt.word_dim, opt.num_layers)
        self.criterion = ContrastiveLoss(opt=opt, margin=opt.margin, max_violation=opt.max_violation)
        self.params = list(self.txt_enc.parameters()) + list(self.img_enc.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=opt.learning_rate)

    def state_dict(self):
        return [self.img_enc.state_dict(), self.txt_enc.state_dict()]

    def train_start(self):
        self.img_enc.train()
        self.txt_enc.train()

    def val_start(self):
        self.img_enc.eval()
        self.txt_enc.eval()

    def forward_emb(self, images, captions, lengths, image_lengths=None):
        img_emb = self.img_enc(images, image_lengths)
        lengths = torch.Tensor(lengths).cuda()              # as written for a GPU
        return img_emb, self.txt_enc(captions, lengths)

    def train_emb(self, images, captions, lengths, image_lengths=None, warmup_alpha=None):
        img_emb, cap_emb = self.forward_emb(images, captions, lengths, image_lengths=image_lengths)
        self.optimizer.zero_grad()
        loss = self.criterion(img_emb, cap_emb)
        self.logger.update('Le', loss.item(), img_emb.size(0))
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()

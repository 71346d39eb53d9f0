"""Stand-in for the DBL reference's OSS/model.py (one branch, the AVE head), for dbl-kit's tests: the layer names of
the published state dict and the published arithmetic, one caption at a time."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def unit(x, dim=-1):
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + 1e-8)


class EncoderImage(nn.Module):
    def __init__(self, img_dim, embed_size, no_imgnorm=False):
        super().__init__()
        self.fc = nn.Linear(img_dim, embed_size)

    def forward(self, images):
        return unit(self.fc(images))


class EncoderText(nn.Module):
    "Captions in any order (sorted here, put back after the GRU)."
    def __init__(self, vocab_size, word_dim, embed_size, num_layers, use_bi_gru=False, no_txtnorm=False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.dropout = nn.Dropout(0.4)
        self.cap_rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=use_bi_gru)

    def forward(self, x, lengths):
        order = torch.argsort(lengths, descending=True)
        emb = self.dropout(self.embed(x))[order]
        out, _ = self.cap_rnn(pack_padded_sequence(emb, lengths[order].tolist(), batch_first=True))
        out, _ = pad_packed_sequence(out, batch_first=True)
        out = out[torch.argsort(order)]
        half = out.size(2) // 2
        return unit((out[:, :, :half] + out[:, :, half:]) / 2)


class EncoderSimilarity(nn.Module):
    def __init__(self, embed_size, sim_dim, no_simnorm=False):
        super().__init__()
        self.sim_tran_w, self.sim_eval_w = nn.Linear(embed_size, sim_dim), nn.Linear(sim_dim, 1)

    def forward(self, img_emb, cap_emb, cap_lens):
        n, columns = img_emb.size(0), []
        for j in range(cap_emb.size(0)):
            words = cap_emb[j, :int(cap_lens[j])][None].repeat(n, 1, 1)
            dots = unit(F.leaky_relu(img_emb @ words.transpose(1, 2), 0.1), dim=2)      # [n, R, w], over words
            attended = unit(torch.softmax(9.0 * dots, dim=1).transpose(1, 2) @ img_emb)
            rep = unit(self.sim_tran_w((attended - words) ** 2)).mean(1)
            columns.append(torch.tanh(self.sim_eval_w(unit(rep))))
        return torch.cat(columns, 1)


class SGRAF(nn.Module):
    def __init__(self, opt):
        super().__init__()
        self.grad_clip = opt.grad_clip
        self.img_enc = EncoderImage(opt.img_dim, opt.embed_size)
        self.txt_enc = EncoderText(opt.vocab_size, opt.word_dim, opt.embed_size, opt.num_layers, use_bi_gru=opt.bi_gru)
        self.sim_enc = EncoderSimilarity(opt.embed_size, opt.sim_dim)

    def forward_emb(self, images, captions, lengths):
        return self.img_enc(images), self.txt_enc(captions, lengths), lengths

    def forward_sim(self, img_embs, cap_embs, cap_lens):
        return self.sim_enc(img_embs, cap_embs, cap_lens)

    def forward(self, images, captions, lengths):
        img, cap, lens = self.forward_emb(images, captions, lengths)
        return self.forward_sim(img, cap, lens).permute(1, 0)

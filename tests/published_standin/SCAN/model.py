"""Stand-in for SCAN's model.py (written for Python 2 and torch 0.3), for dbl-kit's tests: the layer names of the
published state dicts and the published arithmetic, one caption at a time."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import Variable
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import standin_uninstalled_cnn_models as models   # the real file imports torchvision for a CNN encoder never used here


def unit(x, dim):
    "x over its l2 norm (+1e-8)."
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + 1e-8)


def cosine(a, b, dim):
    return (a * b).sum(dim) / (a.norm(2, dim) * b.norm(2, dim)).clamp(min=1e-8)


def pool(scores, opt):
    "Pool word (t2i) or region (i2t) scores: mean, or log-sum-exp with temperature opt.lambda_lse."
    if opt.agg_func == 'Mean':
        return scores.mean(1, keepdim=True)
    return torch.log(torch.exp(scores * opt.lambda_lse).sum(1, keepdim=True)) / opt.lambda_lse


class EncoderImagePrecomp(nn.Module):
    def __init__(self, img_dim, embed_size, no_imgnorm=False):
        super(EncoderImagePrecomp, self).__init__()
        self.fc = nn.Linear(img_dim, embed_size)

    def forward(self, images):
        return unit(self.fc(images), -1)


def EncoderImage(data_name, img_dim, embed_size, precomp_enc_type='basic', no_imgnorm=False):
    return EncoderImagePrecomp(img_dim, embed_size, no_imgnorm)


class EncoderText(nn.Module):
    def __init__(self, vocab_size, word_dim, embed_size, num_layers, use_bi_gru=False, no_txtnorm=False):
        super(EncoderText, self).__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=use_bi_gru)

    def forward(self, x, lengths):
        out, _ = self.rnn(pack_padded_sequence(self.embed(x), lengths, batch_first=True))
        cap_emb, cap_len = pad_packed_sequence(out, batch_first=True)
        cap_emb = (cap_emb[:,:,:cap_emb.size(2)/2] + cap_emb[:,:,cap_emb.size(2)/2:])/2
        return unit(cap_emb, -1), cap_len


def xattn_score_t2i(images, captions, cap_lens, opt):
    "Each word attends to the regions; the caption's score pools the words' cosines with their attended vectors."
    n, columns = images.size(0), []
    for i in range(captions.size(0)):
        words = captions[i, :int(cap_lens[i])][None].repeat(n, 1, 1)                 # [n, w, E]
        dots = unit(F.leaky_relu(images @ words.transpose(1, 2), 0.1), 2)             # [n, R, w], over words
        attended = torch.softmax(dots.transpose(1, 2) * opt.lambda_softmax, 2) @ images
        columns.append(pool(cosine(words, attended, 2), opt))
    return torch.cat(columns, 1)


def xattn_score_i2t(images, captions, cap_lens, opt):
    "Each region attends to the words; the score pools the regions' cosines with their attended vectors."
    n, columns = images.size(0), []
    for i in range(captions.size(0)):
        words = captions[i, :int(cap_lens[i])][None].repeat(n, 1, 1)
        dots = unit(F.leaky_relu(words @ images.transpose(1, 2), 0.1), 2)             # [n, w, R], over regions
        attended = torch.softmax(dots.transpose(1, 2) * opt.lambda_softmax, 2) @ words
        columns.append(pool(cosine(images, attended, 2), opt))
    return torch.cat(columns, 1)


class ContrastiveLoss(nn.Module):
    def __init__(self, opt, margin=0, max_violation=False):
        super(ContrastiveLoss, self).__init__()
        self.opt, self.margin, self.max_violation = opt, margin, max_violation

    def forward(self, im, s, s_l):
        score = xattn_score_t2i if self.opt.cross_attn == 't2i' else xattn_score_i2t
        scores = score(im, s, s_l, self.opt)
        pos = scores.diag()
        I = Variable(torch.eye(scores.size(0)) > .5)
        cost_s = (self.margin + scores - pos[:, None]).clamp(min=0).masked_fill(I, 0)
        cost_im = (self.margin + scores - pos[None, :]).clamp(min=0).masked_fill(I, 0)
        if self.max_violation:
            return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()
        return cost_s.sum() + cost_im.sum()


class SCAN(object):
    def __init__(self, opt):
        self.grad_clip = opt.grad_clip
        self.img_enc = EncoderImage(opt.data_name, opt.img_dim, opt.embed_size, opt.precomp_enc_type)
        self.txt_enc = EncoderText(opt.vocab_size, opt.word_dim, opt.embed_size, opt.num_layers, use_bi_gru=opt.bi_gru)
        if torch.cuda.is_available():
            self.img_enc.cuda()
            self.txt_enc.cuda()
        self.criterion = ContrastiveLoss(opt=opt, margin=opt.margin, max_violation=opt.max_violation)
        self.params = list(self.txt_enc.parameters()) + list(self.img_enc.fc.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=opt.learning_rate)

    def state_dict(self):
        return [self.img_enc.state_dict(), self.txt_enc.state_dict()]

    def train_start(self):
        self.img_enc.train()
        self.txt_enc.train()

    def val_start(self):
        self.img_enc.eval()
        self.txt_enc.eval()

    def forward_emb(self, images, captions, lengths, volatile=False):
        images = Variable(images, volatile=volatile)
        captions = Variable(captions, volatile=volatile)
        cap_emb, cap_lens = self.txt_enc(captions, lengths)
        return self.img_enc(images), cap_emb, cap_lens

    def forward_loss(self, img_emb, cap_emb, cap_len, **kwargs):
        loss = self.criterion(img_emb, cap_emb, cap_len)
        self.logger.update('Le', loss.data[0], img_emb.size(0))
        return loss

    def train_emb(self, images, captions, lengths, ids=None, *args):
        img_emb, cap_emb, cap_lens = self.forward_emb(images, captions, lengths)
        self.optimizer.zero_grad()
        loss = self.forward_loss(img_emb, cap_emb, cap_lens)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()

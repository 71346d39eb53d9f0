"""Stand-in for SCAN's evaluation.py (written for Python 2): the loggers and the sharded cross-attention scores."""
from __future__ import print_function
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch.autograd import Variable

from model import xattn_score_t2i, xattn_score_i2t


class AverageMeter(object):
    "The last value and the running average of one logged quantity."
    def __init__(self):
        self.val, self.sum, self.count = 0, 0, 0

    def update(self, val, n=0):
        self.val = val
        self.sum += val * n
        self.count += n


class LogCollector(object):
    "Named meters."
    def __init__(self):
        self.meters = OrderedDict()

    def update(self, k, v, n=0):
        if k not in self.meters:
            self.meters[k] = AverageMeter()
        self.meters[k].update(v, n)


def shard_xattn_t2i(images, captions, caplens, opt, shard_size=128):
    "t2i scores in blocks of images x captions (Python 2 arithmetic, as written)"
    n_im_shard = (len(images)-1)/shard_size + 1
    n_cap_shard = (len(captions)-1)/shard_size + 1
    d = np.zeros((len(images), len(captions)))
    for i in range(n_im_shard):
        i0, i1 = shard_size*i, min(shard_size*(i+1), len(images))
        for j in range(n_cap_shard):
            j0, j1 = shard_size*j, min(shard_size*(j+1), len(captions))
            im = Variable(torch.from_numpy(images[i0:i1]), volatile=True).cuda()
            s = Variable(torch.from_numpy(captions[j0:j1]), volatile=True).cuda()
            d[i0:i1, j0:j1] = xattn_score_t2i(im, s, caplens[j0:j1], opt).data.cpu().numpy()
    return d


def shard_xattn_i2t(images, captions, caplens, opt, shard_size=128):
    "i2t scores in blocks of images x captions (Python 2 arithmetic, as written)"
    n_im_shard = (len(images)-1)/shard_size + 1
    n_cap_shard = (len(captions)-1)/shard_size + 1
    d = np.zeros((len(images), len(captions)))
    for i in range(n_im_shard):
        i0, i1 = shard_size*i, min(shard_size*(i+1), len(images))
        for j in range(n_cap_shard):
            j0, j1 = shard_size*j, min(shard_size*(j+1), len(captions))
            im = Variable(torch.from_numpy(images[i0:i1]), volatile=True).cuda()
            s = Variable(torch.from_numpy(captions[j0:j1]), volatile=True).cuda()
            d[i0:i1, j0:j1] = xattn_score_i2t(im, s, caplens[j0:j1], opt).data.cpu().numpy()
    return d

"""Stand-in for SGRAF's evaluation.py: the loggers the model writes to and the sharded evaluation scores."""
import sys
from collections import OrderedDict

import numpy as np
import torch


class AverageMeter:
    "The last value and the running average of one logged quantity."
    def __init__(self): self.val, self.sum, self.count = 0, 0, 0

    def update(self, val, n=0):
        self.val = val
        self.sum += val * n
        self.count += n


class LogCollector:
    "Named meters."
    def __init__(self): self.meters = OrderedDict()

    def update(self, k, v, n=0):
        self.meters.setdefault(k, AverageMeter()).update(v, n)


def shard_attn_scores(model, img_embs, cap_embs, cap_lens, opt, shard_size=100):
    "Scores [n_images, n_captions] in blocks of `shard_size` images x `shard_size` captions (numpy in, numpy out)."
    sims = np.zeros((len(img_embs), len(cap_embs)))
    for i0 in range(0, len(img_embs), shard_size):
        for j0 in range(0, len(cap_embs), shard_size):
            sys.stdout.write('\r>> shard (%d,%d)' % (i0, j0))
            with torch.no_grad():
                im = torch.from_numpy(img_embs[i0:i0 + shard_size]).float().cuda()   # as written for a GPU
                ca = torch.from_numpy(cap_embs[j0:j0 + shard_size]).float().cuda()
                block = model.forward_sim(im, ca, cap_lens[j0:j0 + shard_size])
            sims[i0:i0 + shard_size, j0:j0 + shard_size] = block.cpu().numpy()
    sys.stdout.write('\n')
    return sims

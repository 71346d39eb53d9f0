"""Stand-in for VSE-infinity's lib/evaluation.py (bigru branch): the loggers and the evaluation's similarity."""
from collections import OrderedDict

import numpy as np

from lib.vse import VSEModel   # noqa: F401  (as the real file imports it)


class AverageMeter(object):
    def __init__(self):
        self.val, self.sum, self.count = 0, 0, 0

    def update(self, val, n=0):
        self.val = val
        self.sum += val * n
        self.count += n


class LogCollector(object):
    def __init__(self):
        self.meters = OrderedDict()

    def update(self, k, v, n=0):
        self.meters.setdefault(k, AverageMeter()).update(v, n)


def compute_sim(images, captions):
    return images @ captions.T

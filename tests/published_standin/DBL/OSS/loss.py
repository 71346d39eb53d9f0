"""Stand-in for the DBL reference's OSS/loss.py: the bidirectional ranking loss, chosen by name."""
import torch
import torch.nn as nn


class BirankLoss(nn.Module):
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


def init_loss(name, **kwargs):
    return {'birank': BirankLoss}[name](**kwargs)

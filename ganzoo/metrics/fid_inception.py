"""The FID variant of InceptionV3's network: torchvision's ``Inception3`` with pytorch-fid's blocks.

The blocks that differ in the TensorFlow graph FID was defined with: average pools that ignore
padding, and a max pool in the last block. The block definitions follow pytorch-fid (Apache
License 2.0). Kept apart from :mod:`ganzoo.metrics.inception`, so that finding the extractor
(``ganzoo fid``, ``ganzoo plugins``) does not import torchvision, about 2 s of CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import inception as tv_inception


class FIDInceptionA(tv_inception.InceptionA):
    """InceptionA whose average pool ignores the zero padding, as TensorFlow's does."""

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated."""
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(pool)], 1)


class FIDInceptionC(tv_inception.InceptionC):
    """InceptionC whose average pool ignores the zero padding, as TensorFlow's does."""

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated."""
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):  # fmt: skip
            dbl = layer(dbl)
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch7x7, dbl, self.branch_pool(pool)], 1)


class FIDInceptionE1(tv_inception.InceptionE):
    """The first InceptionE, with an average pool that ignores the zero padding."""

    use_max_pool = False

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated."""
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        if self.use_max_pool:
            pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pool)], 1)


class FIDInceptionE2(FIDInceptionE1):
    """The second InceptionE, with the max pool of the FID graph (where the paper averages)."""

    use_max_pool = True


def build_fid_inception() -> tv_inception.Inception3:
    """Torchvision's Inception3 patched into the FID network (weights not loaded)."""
    net = tv_inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE1(1280)
    net.Mixed_7c = FIDInceptionE2(2048)
    return net


def fold_batch_norms(net: nn.Module) -> None:
    """Fold the batch norm of each of ``net``'s ``BasicConv2d`` into its convolution, in place.

    The convolution gains the bias ``beta - gamma * mean / sqrt(var + eps)`` and its weight is
    scaled by ``gamma / sqrt(var + eps)`` (eps 0.001, the blocks' own); the batch norm becomes
    an identity. For a network in eval mode; its outputs change by float rounding only.
    """
    blocks = [m for m in net.modules() if isinstance(m, tv_inception.BasicConv2d)]
    for block in blocks:
        block.conv = fuse_conv_bn_eval(block.conv, block.bn)
        block.bn = nn.Identity()

"""The seed's detector in Python: the seed's RevCol-T (seedref) as row 0 and YOLOv5 v6.0's neck and head from
configs/yolov5-revcol-tiny.yaml, with YOLOv5 v7.0's layer definitions (Conv = conv + BatchNorm + SiLU, C3, SPPF,
nearest upsampling, Concat, Detect's 1x1 output convolutions). The Python peer of `revkit bench --model
yolov5-revcol-tiny`: same structure and parameter count (checked against `revkit info`), same training step."""
import math

import torch
from torch import nn


def make_divisible(x, divisor=8):
    return math.ceil(x / divisor) * divisor


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1, 1)
        self.cv2 = Conv(c2, c2, 3, 1)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=True):
        super().__init__()
        c_ = int(c2 * 0.5)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class SeedDetector(nn.Module):
    """Positions as in the config: the backbone's four maps at 1-4, then one per row (the seed's Concat rows read
    positions 3, 2, 9 and 5: the backbone's P4 and P3, the first C3 and SPPF)."""

    def __init__(self, backbone, backbone_channels, nc=80, width=0.25, depth=0.33, anchors_per_level=3):
        super().__init__()
        self.backbone = backbone
        w = lambda c: make_divisible(c * width)
        d = lambda n: max(round(n * depth), 1) if n > 1 else n
        ch = {p + 1: c for p, c in enumerate(backbone_channels)}  # positions 1-4
        self.sppf = SPPF(ch[4], w(1024), 5)  # 5
        ch[5] = w(1024)
        self.conv6 = Conv(ch[5], w(512), 1, 1)
        self.c3_9 = C3(w(512) + ch[3], w(512), d(3), False)
        self.conv10 = Conv(w(512), w(256), 1, 1)
        self.c3_13 = C3(w(256) + ch[2], w(256), d(3), False)
        self.conv14 = Conv(w(256), w(256), 3, 2)
        self.c3_16 = C3(w(256) + w(512), w(512), d(3), False)
        self.conv17 = Conv(w(512), w(512), 3, 2)
        self.c3_19 = C3(w(512) + w(1024), w(1024), d(3), False)
        self.no = nc + 5
        self.na = anchors_per_level
        self.detect = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in (w(256), w(512), w(1024)))
        self.up = nn.Upsample(None, 2, "nearest")

    def forward(self, x):
        _, p3, p4, p5 = self.backbone(x)
        x5 = self.sppf(p5)
        x6 = self.conv6(x5)
        x9 = self.c3_9(torch.cat((self.up(x6), p4), 1))
        x10 = self.conv10(x9)
        x13 = self.c3_13(torch.cat((self.up(x10), p3), 1))
        x16 = self.c3_16(torch.cat((self.conv14(x13), x9), 1))
        x19 = self.c3_19(torch.cat((self.conv17(x16), x5), 1))
        outs = []
        for conv, f in zip(self.detect, (x13, x16, x19)):
            bs, _, ny, nx = f.shape
            outs.append(conv(f).view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return outs


def build(seedref, save_memory):
    """The seed's detector on the seed's RevCol-T (drop path 0, as `revkit bench` runs it)."""
    channels, layers, columns, _ = seedref.VARIANTS["tiny"]
    backbone = seedref.build(channels, layers, columns, drop_path=0.0, save_memory=save_memory)
    return SeedDetector(backbone, channels)

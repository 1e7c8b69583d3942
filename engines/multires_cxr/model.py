"""Multi-resolution weakly supervised CXR network (Yao et al. 2018, arXiv 1803.07703), our implementation.

Layout (input ``[B, 1, N, N]``, grey, normalised as in :mod:`engines.multires_cxr.data`):

* **Encoder** (ResNet-style, resolution-reducing): ``stem`` conv 7×7/2 + max-pool/2 → ``[B, w0, N/4, N/4]``;
  ``layer1..layer4`` residual stages (basic or bottleneck blocks) at strides 4, 8, 16, 32 with widths
  ``c1..c4`` (bottleneck: ×4).
* **Multi-resolution decoder** (resolution-preserving, dense connections as in the paper): starting from the
  coarsest stage, iteratively upsample (×2, bilinear), project (1×1), concatenate with the finer encoder
  features and fuse with a 3×3 conv block: ``d4 = e4``, ``d_l = F_l([up(d_{l+1}), e_l])`` for l = 3, 2, 1.
* **Class saliency maps** at every resolution: ``heads.l`` = 1×1 conv ``d_l → 14`` gives ``S_l``
  ``[B, 14, N/2^(l+1), N/2^(l+1)]``; each is upsampled to the finest grid ``[B, 14, N/4, N/4]`` and the
  resolutions are fused per class by a learned 1×1 grouped conv (``fuse``, init = mean) → ``S``.
* **LSE-LBA pooling** per class (:mod:`lse_lba`). ``pooling = "probability"`` (the paper; the default since
  issue 18): the maps are squashed ``P = sigmoid(S)`` (instance probabilities on a fixed 0-1 scale) and pooled,
  ``p = LSE-LBA(P)`` in (0, 1), optionally only over the lung-field instances (``region``); the network returns
  ``logit(p)`` so that the loss and temperature scaling work on logits. ``pooling = "logit"`` (weights before
  issue 18): ``LSE-LBA(S)`` is the logit.

Two configs: ``paper`` (512 px, ResNet-50 layout 3-4-6-3 bottleneck blocks, widths 64..512×4) and ``demo``
(256 px, one basic block per stage, widths 16..128) that trains on a 2-core CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engines.common.config import DictConfig
from engines.common.cxr_findings import SUPPORTED
from engines.common.cxr_labels import LABELS, NUM_CLASSES
from engines.multires_cxr.lse_lba import LSELBAPool


@dataclass(frozen=True)
class MultiResConfig(DictConfig):
    """Model hyper-parameters.

    Attributes:
        name: "demo" or "paper" (or custom).
        input_size: N, the square input the network is trained at (the engine resizes to it).
        stem_width: w0, channels after the stem.
        widths: c1..c4, stage widths (before the bottleneck expansion).
        blocks: residual blocks per stage.
        bottleneck: bottleneck blocks (expansion 4) instead of basic blocks.
        r0: LSE-LBA lower bound of the sharpness.
        num_classes: number of findings (``len(labels)``).
        labels: the finding names, in output order (default: the 14 NIH labels of the first weights).
        pooling: "probability" (pool ``sigmoid(S)``, the paper) or "logit" (pool ``S``).
    """

    name: str = "demo"
    input_size: int = 256
    stem_width: int = 16
    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    bottleneck: bool = False
    r0: float = 5.0
    num_classes: int = NUM_CLASSES
    extra: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = LABELS
    pooling: str = "logit"

    def __post_init__(self) -> None:
        if len(self.labels) != self.num_classes:
            raise ValueError(f"{len(self.labels)} labels for {self.num_classes} classes")
        if self.pooling not in ("probability", "logit"):
            raise ValueError(f"pooling must be 'probability' or 'logit', not {self.pooling!r}")


CONFIGS: dict[str, MultiResConfig] = {
    "demo": MultiResConfig(),
    "demo_findings": MultiResConfig(name="demo_findings", pooling="probability", labels=SUPPORTED,
                                    num_classes=len(SUPPORTED)),
    "paper": MultiResConfig(name="paper", input_size=512, stem_width=64, widths=(64, 128, 256, 512),
                            blocks=(3, 4, 6, 3), bottleneck=True),
}


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with identity/projection shortcut. ``[B, Cin, H, W]`` → ``[B, C, H/s, W/s]``."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != width:
            self.downsample = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.downsample(x))


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride) → 1×1 ×4 bottleneck. ``[B, Cin, H, W]`` → ``[B, 4·width, H/s, W/s]``."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.downsample(x))


class FuseBlock(nn.Module):
    """Decoder step: ``up(coarse)`` projected 1×1 to ``c``, concatenated with ``fine`` (``c``), 3×3 conv-BN-ReLU.

    ``coarse [B, Cc, H/2, W/2]``, ``fine [B, c, H, W]`` → ``[B, c, H, W]``.
    """

    def __init__(self, c_coarse: int, c: int) -> None:
        super().__init__()
        self.lateral = nn.Conv2d(c_coarse, c, 1, bias=False)
        self.conv = nn.Conv2d(2 * c, c, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.lateral(coarse), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.bn(self.conv(torch.cat([up, fine], dim=1))))


class MultiResCXR(nn.Module):
    """The whole network; see the module docstring. ``forward`` returns logits and the fused saliency maps."""

    def __init__(self, config: MultiResConfig) -> None:
        super().__init__()
        self.config = config
        block = Bottleneck if config.bottleneck else BasicBlock
        self.stem = nn.Sequential(
            nn.Conv2d(1, config.stem_width, 7, 2, 3, bias=False), nn.BatchNorm2d(config.stem_width),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        cin = config.stem_width
        outs: list[int] = []
        layers = []
        for i, (w, n) in enumerate(zip(config.widths, config.blocks, strict=True)):
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for b in range(n):
                blocks.append(block(cin, w, stride if b == 0 else 1))
                cin = w * block.expansion
            layers.append(nn.Sequential(*blocks))
            outs.append(cin)
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.decoder = nn.ModuleList([FuseBlock(outs[i + 1], outs[i]) for i in range(len(outs) - 1)])
        c = config.num_classes
        self.heads = nn.ModuleList([nn.Conv2d(o, c, 1) for o in outs])
        r = len(outs)
        self.fuse = nn.Conv2d(c * r, c, 1, groups=c)
        nn.init.constant_(self.fuse.weight, 1.0 / r)
        nn.init.zeros_(self.fuse.bias)
        self.pool = LSELBAPool(c, config.r0)

    @property
    def map_stride(self) -> int:
        """Input pixels per saliency-map pixel (4: the finest stage)."""
        return 4

    def saliency_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-resolution class maps ``S_l`` ``[B, 14, N/2^(l+1), N/2^(l+1)]``, finest first."""
        e1 = self.layer1(self.stem(x))
        e2 = self.layer2(e1)
        e3 = self.layer3(e2)
        e4 = self.layer4(e3)
        enc = [e1, e2, e3, e4]
        dec = [e4]
        for i in range(len(enc) - 2, -1, -1):
            dec.insert(0, self.decoder[i](dec[0], enc[i]))
        return [head(d) for head, d in zip(self.heads, dec, strict=True)]

    def forward(self, x: torch.Tensor, region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, 1, N, N]`` → (logits ``[B, C]``, saliency logits ``S [B, C, N/4, N/4]``).

        ``region``: optional ``[B, 1, N/4, N/4]`` 0/1 instances to pool over (the lung fields).
        """
        levels = self.saliency_levels(x)
        size = levels[0].shape[-2:]
        ups = [levels[0]] + [F.interpolate(s, size=size, mode="bilinear", align_corners=False)
                             for s in levels[1:]]
        b, c, h, w = ups[0].shape
        stacked = torch.stack(ups, dim=2).reshape(b, c * len(ups), h, w)  # class-major: [c0 l0, c0 l1, …]
        s = self.fuse(stacked)
        if self.config.pooling == "logit":
            return self.pool(s, region), s
        p = self.pool(torch.sigmoid(s), region).clamp(1e-6, 1 - 1e-6)
        return torch.log(p) - torch.log1p(-p), s

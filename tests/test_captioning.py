from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from mmdemo import accounts
from mmdemo.cli import main
from mmdemo.data import StoreError, default_store
from mmdemo.media.files import MAX_SIDE, MediaError
from mmdemo.tasks import captioning
from mmdemo.ui import captioning as captioning_tab
from tests import caption_vqa_helpers as helpers
from tests.conftest import ASSETS

CAT, COFFEE = str(ASSETS / "cat.jpg"), str(ASSETS / "coffee.jpg")
profile_flag_does_not_leak = helpers.profile_flag_does_not_leak
not_an_image = helpers.not_an_image


@pytest.fixture
def corrupt_jpeg(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes((ASSETS / "cat.jpg").read_bytes()[:2000])
    return str(path)


@pytest.fixture
def huge_image(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (MAX_SIDE * 2, MAX_SIDE + 10), (200, 30, 30)).save(path)
    return str(path)


@pytest.mark.parametrize(
    ("options", "expect_prefix"),
    [
        (dict(strategy="beam", num_beams=3, max_length=6), ""),
        (dict(strategy="sample", max_length=5, temperature=0.7, seed=3), ""),
        (dict(strategy="beam", num_beams=2, max_length=8, prefix="a picture of"), "a picture of"),
    ],
)
def test_tiny_blip_captions_a_batch_with_each_decoding_option(tiny, options, expect_prefix):
    chosen, notes = captioning.caption_options(**options)
    results, skipped = captioning.caption_images([CAT, COFFEE], chosen, registry=tiny)
    assert not notes and not skipped
    assert [r.name for r in results] == ["cat.jpg", "coffee.jpg"]
    assert type(tiny.get("caption").model).__name__ == "BlipForConditionalGeneration"
    store = default_store()
    for result in results:
        assert result.caption.startswith(expect_prefix) and result.caption.strip()
        assert not result.model.baseline and result.model_label.startswith("tiny BlipForConditional")
        prediction = store.prediction(result.prediction_id)
        assert prediction.task == "caption" and prediction.output == result.caption
        assert prediction.media_id == result.media_id and store.media(result.media_id).kind == "image"
        assert prediction.params["strategy"] == chosen.strategy
        assert prediction.params["max_length"] == chosen.max_length and prediction.params["batch_size"] == 2
        assert prediction.profile == "tiny" and prediction.device == "cpu" and prediction.latency_ms > 0
    # max length bounds the generated tokens: the prefix plus a few words, never a paragraph
    prefix_words = len(expect_prefix.split())
    assert all(len(r.caption.split()) <= prefix_words + chosen.max_length for r in results)


def test_sampling_is_reproducible_from_its_recorded_seed(tiny):
    options, _ = captioning.caption_options(strategy="sample", max_length=6)
    first = captioning.caption_image(CAT, options, registry=tiny)
    seed = default_store().prediction(first.prediction_id).params["seed"]
    again, _ = captioning.caption_options(strategy="sample", max_length=6, seed=seed)
    assert captioning.caption_image(CAT, again, registry=tiny).caption == first.caption


def test_lite_captions_are_non_empty_and_labelled_baseline(lite):
    results, _ = captioning.caption_images([CAT, COFFEE], registry=lite)
    assert all(r.caption and r.model.baseline for r in results)
    assert "baseline" in results[0].model_label
    assert default_store().prediction(results[0].prediction_id).profile == "lite"


def test_a_correction_is_stored_with_provenance_and_history_kept(tiny):
    accounts.add_user("bo", "reviewer", "password123")  # a reviewer corrects anyone's caption
    result = captioning.caption_image(CAT, registry=tiny, user="ana")
    first = captioning.correct_caption(result.prediction_id, "  a tabby cat  on a sofa", user="ana")
    second = captioning.correct_caption(result.prediction_id, "a tabby cat", user="bo")
    store = default_store()
    history = store.corrections(result.prediction_id)
    assert [c.id for c in history] == [first, second] and second > first
    assert history[0].output == "a tabby cat on a sofa" and history[0].user == "ana"
    assert history[1].user == "bo"
    prediction = store.prediction(result.prediction_id)
    assert prediction.user == "ana" and prediction.model_name == result.model.name
    assert prediction.model_version == "base" and prediction.media_id == result.media_id
    assert captioning.correct_caption(result.prediction_id, result.caption, user="ana") > second  # confirmed
    assert store.latest_correction(result.prediction_id).note == "confirmed as correct"


def test_bad_corrections_are_refused_without_touching_the_store(tiny):
    result = captioning.caption_image(CAT, registry=tiny)
    with pytest.raises(ValueError, match="empty"):
        captioning.correct_caption(result.prediction_id, "   ")
    with pytest.raises(ValueError, match="caption an image first"):
        captioning.correct_caption(None, "a cat")
    with pytest.raises(StoreError, match="no caption prediction #999"):
        captioning.correct_caption(999, "a cat")
    assert default_store().corrections() == []


def test_batch_edits_save_only_changed_captions(tiny):
    results, _ = captioning.caption_images([CAT, COFFEE], registry=tiny)
    rows = [(results[0].prediction_id, results[0].caption), (results[1].prediction_id, "a cup of coffee")]
    saved = captioning.save_changed_captions(rows)
    assert len(saved) == 1
    assert default_store().latest_correction(results[1].prediction_id).output == "a cup of coffee"
    assert captioning.save_changed_captions(rows) == []  # saving again changes nothing
    with pytest.raises(ValueError, match="empty"):  # one bad edit saves none of the others
        captioning.save_changed_captions(
            [(results[0].prediction_id, "a cat"), (results[1].prediction_id, " ")]
        )
    assert default_store().latest_correction(results[0].prediction_id) is None


def test_bad_images_raise_clear_errors(not_an_image, corrupt_jpeg, tmp_path, tiny):
    with pytest.raises(MediaError, match="no image given"):
        captioning.caption_images([], registry=tiny)
    with pytest.raises(MediaError, match=r"notes\.jpg: not an image"):
        captioning.caption_image(not_an_image, registry=tiny)
    with pytest.raises(MediaError, match=r"broken\.jpg: the image is corrupt or truncated"):
        captioning.caption_image(corrupt_jpeg, registry=tiny)
    with pytest.raises(MediaError, match="file not found"):
        captioning.caption_image(str(tmp_path / "missing.jpg"), registry=tiny)
    assert default_store().counts()["predictions"] == 0


def test_a_batch_skips_bad_files_with_a_message(not_an_image, tiny):
    results, skipped = captioning.caption_images([CAT, not_an_image], registry=tiny, skip_bad=True)
    assert [r.name for r in results] == ["cat.jpg"] and "notes.jpg" in skipped[0]
    with pytest.raises(MediaError, match="no usable image"):
        captioning.caption_images([not_an_image], registry=tiny, skip_bad=True)


def test_a_huge_image_is_downscaled_with_a_note(huge_image, tiny):
    result = captioning.caption_image(huge_image, registry=tiny)
    assert result.caption and any("downscaled" in note for note in result.notes)
    media = default_store().media(result.media_id)
    assert max(media.width, media.height) <= MAX_SIDE


def test_decoding_options_are_checked():
    with pytest.raises(ValueError, match="strategy"):
        captioning.caption_options(strategy="greedy-ish")
    with pytest.raises(ValueError, match="max length"):
        captioning.caption_options(max_length=0)
    options, notes = captioning.caption_options(prefix="word " * 100)
    assert len(options.prefix) <= captioning.MAX_PREFIX_CHARS and "prefix was cut" in notes[0]


# -- the tab's handlers (what a click runs) --------------------------------------------------------


def test_tab_handlers_caption_correct_and_label(tiny, not_an_image):
    caption, about, prediction_id, saved = captioning_tab.caption_one(tiny, CAT, "beam", 2, 8, 1.0, "", None)
    assert caption and "tiny BlipForConditionalGeneration" in about and "ms" in about
    assert "baseline" not in about and saved == ""
    message = captioning_tab.save_correction(prediction_id, "a cat on a sofa", None)
    correction = default_store().latest_correction(prediction_id)
    assert message.startswith(f"✔ saved as correction #{correction.id}")
    gallery, table, about, _ = captioning_tab.caption_many(tiny, [CAT, COFFEE], "sample", 1, 5, 0.8, "", None)
    assert len(gallery) == len(table) == 2 and table[1][1] == "coffee.jpg" and "Skipped" not in about
    table[1][2] = "a cup of coffee"
    assert captioning_tab.save_batch_corrections(table, None).startswith("✔ saved as correction #")
    assert captioning_tab.save_batch_corrections(table, None).startswith("no caption was changed")
    with pytest.warns(UserWarning, match=r"skipped notes\.jpg"):  # gr.Warning, outside a running app
        _, table, about, _ = captioning_tab.caption_many(
            tiny, [not_an_image, CAT], "beam", 1, 5, 1.0, "", None
        )
    assert [row[1] for row in table] == ["cat.jpg"] and "Skipped notes.jpg: not an image" in about


def test_tab_handlers_turn_bad_input_into_messages(tiny, not_an_image, corrupt_jpeg):
    for image, message in [
        (None, "no image given"),
        (not_an_image, "not an image"),
        (corrupt_jpeg, "corrupt"),
    ]:
        with pytest.raises(gr.Error, match=message):
            captioning_tab.caption_one(tiny, image, "beam", 3, 30, 1.0, "", None)
    with pytest.raises(gr.Error, match="no image given"):
        captioning_tab.caption_many(tiny, [], "beam", 3, 30, 1.0, "", None)
    with pytest.raises(gr.Error, match="no usable image"):
        captioning_tab.caption_many(tiny, [not_an_image, corrupt_jpeg], "beam", 3, 30, 1.0, "", None)
    with pytest.raises(gr.Error, match="caption an image first"):
        captioning_tab.save_correction(None, "a cat", None)


# -- the command line -------------------------------------------------------------------------------
def test_cli_caption_json_shape(capsys):
    assert main(["--profile", "lite", "caption", CAT, COFFEE, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["path"] for row in rows] == [CAT, COFFEE]
    for row in rows:
        assert set(row) == {"path", "caption", "model"} and row["caption"]
        assert "baseline" in row["model"]


def test_cli_caption_plain_with_decoding_options(capsys):
    assert main(["--profile", "tiny", "caption", CAT, "--prefix", "a photo of", "--max-length", "4"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{CAT}\ta photo of")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["caption", "{bad}"], "not an image"),
        (["caption", "{corrupt}"], "corrupt"),
        (["caption", "missing.jpg"], "file not found"),
        (["caption", "{cat}", "--max-length", "0"], "max length"),
    ],
)
def test_cli_caption_bad_input_exits_2_with_one_line(argv, message, not_an_image, corrupt_jpeg, capsys):
    argv = [a.format(bad=not_an_image, corrupt=corrupt_jpeg, cat=CAT) for a in argv]
    assert main(["--profile", "tiny", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and len(captured.err.strip().splitlines()) == 1


def test_images_are_kept_beside_the_database_under_their_hash(tiny, sample_images):
    from mmdemo.media.files import file_hash
    from mmdemo.media.images import media_id_of

    store = default_store()
    from_file = captioning.caption_image(CAT, registry=tiny)
    kept = store.media(from_file.media_id)
    assert from_file.media_id == file_hash(CAT) == media_id_of(CAT)
    assert kept.path.endswith(f"media/{from_file.media_id[:16]}/{Path(CAT).name}")
    assert file_hash(kept.path) == file_hash(CAT)
    in_memory = sample_images["coffee"]  # a PIL image, as an API caller or another tab may hand over
    first = captioning.caption_image(in_memory, registry=tiny)
    again = captioning.caption_image(in_memory.copy(), registry=tiny)
    assert first.media_id == again.media_id == media_id_of(in_memory) and first.name == "image"
    assert store.media(first.media_id).path.endswith(".png") and store.counts()["media"] == 2

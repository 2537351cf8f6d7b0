from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmdemo import accounts
from mmdemo.cli import main
from mmdemo.data import StoreError, default_store
from mmdemo.media import video
from mmdemo.media.files import MediaError
from mmdemo.tasks import video_classify as vc
from mmdemo.tasks.corrections import CONFIRMED
from tests.video_helpers import (
    SAMPLE_RATE,
    TONE_HZ,
    clip_with_tone,
    grey_frames,
    grey_level,
    photo_frames,
    tone,
)

LABELS = ["a cup of coffee", "a cat", "a rocket", "a horse", "a motorcycle"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image

    from tests.conftest import ASSETS

    folder = tmp_path_factory.mktemp("clips")
    coffee = Image.open(ASSETS / "coffee.jpg")
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    return {
        "tone": clip_with_tone(folder / "tone.mp4"),
        "silent": video.write_clip(folder / "silent.mp4", grey_frames(30), 10),
        "audio_only": video.write_clip(folder / "audio.m4a", None, audio=tone(3.0), sample_rate=SAMPLE_RATE),
        "rotated": clip_with_tone(folder / "rotated.mp4", seconds=2, rotation=90),
        "coffee": video.write_clip(
            folder / "coffee.mp4", photo_frames(coffee, 30), 10, tone(3.0), SAMPLE_RATE
        ),
        "corrupt": corrupt,
        "empty": empty,
    }


def same_ranking(first: list[tuple[str, float]], second: list[tuple[str, float]]) -> bool:
    return [label for label, _ in first] == [label for label, _ in second] and np.allclose(
        [score for _, score in first], [score for _, score in second]
    )


# -- decoding ---------------------------------------------------------------------------------------
def test_frames_are_sampled_at_spread_times_and_show_the_right_frame(clips):
    clip = video.sample_clip(clips["tone"], 5, None)
    assert clip.info.duration_s == pytest.approx(5.0, abs=0.1)
    assert clip.info.has_video and clip.info.has_audio and clip.info.fps == pytest.approx(10)
    assert clip.timestamps == [0.5, 1.5, 2.5, 3.5, 4.5]
    # frame i (shown from i/10 s) has grey level 5*i: each seek landed on the frame shown at that time
    assert [grey_level(frame) for frame in clip.frames] == pytest.approx([25, 75, 125, 175, 225], abs=4)
    assert clip.audio == []  # no sample rate asked for, no sound read


def test_sound_is_read_around_each_frame_and_resampled(clips):
    clip = video.sample_clip(clips["tone"], 4, 48_000)
    assert clip.sample_rate == 48_000 and len(clip.audio) == 4
    assert clip.audio_timestamps == pytest.approx(clip.timestamps, abs=0.1)
    for window in clip.audio:
        assert window.dtype == np.float32 and window.size == pytest.approx(1.25 * 48_000, rel=0.02)
        spectrum = np.abs(np.fft.rfft(window))
        assert np.argmax(spectrum) * 48_000 / window.size == pytest.approx(TONE_HZ, rel=0.01)


def test_a_clip_without_sound_says_so(clips):
    clip = video.sample_clip(clips["silent"], 3, 48_000)
    assert not clip.info.has_audio and len(clip.frames) == 3 and clip.audio == []
    assert any("no audio track" in note for note in clip.notes)


def test_an_audio_only_file_gives_sound_and_no_frames(clips):
    clip = video.sample_clip(clips["audio_only"], 3, 16_000)
    assert not clip.info.has_video and clip.frames == [] and len(clip.audio) == 3
    assert any("no video track" in note for note in clip.notes)


def test_rotation_metadata_is_applied(clips):
    info = video.probe(clips["rotated"])
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)
    frame = np.asarray(video.sample_clip(clips["rotated"], 1, None).frames[0])
    assert frame.shape[:2] == (64, 48)
    # turned a quarter counterclockwise for display: the red left band is now along the bottom
    assert frame[-3, 24, 0] > 200 and frame[-3, 24, 1] < 60 and frame[3, 24, 0] < 200


def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    times = [0.0, 0.1, 0.15, 0.2, 1.0, 1.05, 2.5, 2.6, 2.7, 4.0]
    path = video.write_clip(tmp_path / "vfr.mp4", grey_frames(10, step=20), 10, frame_times=times)
    with video._open(path) as container:
        found, frames = video.read_frames(container, [0.12, 0.5, 1.02, 2.0, 2.65])
    assert found == [0.1, 0.2, 1.0, 1.05, 2.6]
    assert [grey_level(frame) for frame in frames] == pytest.approx([20, 60, 80, 100, 140], abs=4)


@pytest.mark.parametrize(
    "name, message", [("corrupt", "cannot be read|corrupt"), ("empty", "empty"), ("missing", "not found")]
)
def test_bad_files_are_a_clear_media_error(clips, tmp_path, name, message):
    path = clips.get(name, tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match=message):
        video.sample_clip(path, 4, None)


def test_a_truncated_clip_is_a_clear_media_error(clips, tmp_path):
    data = clips["tone"].read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"truncated|corrupt"):
        video.sample_clip(truncated, 4, 48_000)


def test_clips_over_the_duration_limit_are_refused(clips, monkeypatch):
    monkeypatch.setattr(video, "MAX_DURATION_S", 2)
    with pytest.raises(MediaError, match=r"over the 2\.0 seconds limit"):
        video.sample_clip(clips["tone"], 4, None)


def test_frame_count_must_be_sane(clips):
    with pytest.raises(MediaError, match="between 1 and"):
        video.sample_clip(clips["tone"], 0, None)


# -- classification ----------------------------------------------------------------------------------
def test_tiny_profile_full_path_scores_frames_and_sound_with_clap(clips, tiny):
    result = vc.classify_video(
        clips["tone"], LABELS, {"visual": 1.0, "audio": 1.0}, n_frames=4, registry=tiny
    )
    assert type(tiny.get("audio").model).__name__ == "ClapModel"
    for ranking in (result.fused, result.visual, result.audio):
        assert sorted(label for label, _ in ranking) == sorted(LABELS)
        assert sum(score for _, score in ranking) == pytest.approx(1.0, abs=1e-6)
        assert [s for _, s in ranking] == sorted((s for _, s in ranking), reverse=True)
    assert result.weights == {"visual": 0.5, "audio": 0.5}
    assert result.step_scores.shape == (4, len(LABELS))
    assert np.allclose(result.step_scores.sum(axis=1), 1.0)

    prediction = default_store().prediction(result.prediction_id)
    assert prediction.task == "video" and prediction.model_name == "tiny open_clip CLIP"
    assert prediction.params["timestamps"] == result.timestamps
    assert prediction.params["weights"] == {"visual": 0.5, "audio": 0.5}
    assert prediction.params["models"]["audio"]["name"] == "tiny ClapModel"
    assert set(prediction.params["scores"]) == {"visual", "audio"}
    assert len(prediction.params["scores"]["audio"]["step_log_probs"]) == 4
    assert prediction.output["fused"][0]["label"] == result.fused[0][0]
    media = default_store().media(prediction.media_id)
    assert media.kind == "video" and media.duration_s == pytest.approx(5.0, abs=0.1)
    assert Path(media.path).exists()  # the clip is kept in the data folder, for training


def test_a_zero_audio_weight_gives_the_visual_ranking(clips, tiny):
    result = vc.classify_video(
        clips["tone"], LABELS, {"visual": 0.7, "audio": 0.0}, n_frames=3, registry=tiny
    )
    assert result.audio == [] and result.weights == {"visual": 1.0}
    assert same_ranking(result.fused, result.visual)


def test_audio_only_file_is_classified_from_its_sound_with_clap(clips, tiny):
    result = vc.classify_video(clips["audio_only"], LABELS, n_frames=3, registry=tiny)
    assert result.visual == [] and len(result.audio) == len(LABELS)
    assert same_ranking(result.fused, result.audio)
    assert default_store().media(default_store().prediction(result.prediction_id).media_id).kind == "audio"


def test_lite_ranks_the_photo_subject_first_and_explains_the_audio(clips, lite):
    result = vc.classify_video(clips["coffee"], LABELS, n_frames=4, registry=lite)
    assert result.fused[0][0] == "a cup of coffee"
    assert result.visual[0][0] == "a cup of coffee" and result.audio == []
    assert vc.LITE_AUDIO_NOTE in result.notes and result.weights == {"visual": 1.0}


def test_the_sound_is_read_only_where_a_model_can_score_it(clips, lite, tiny, monkeypatch):
    audio_rates = []

    def sample(path, n_frames, audio_rate=None):
        audio_rates.append(audio_rate)
        return video.sample_clip(path, n_frames, audio_rate)

    monkeypatch.setattr(vc, "sample_clip", sample)
    vc.classify_video(clips["coffee"], LABELS, n_frames=2, registry=lite, record=False)
    vc.classify_video(clips["coffee"], LABELS, n_frames=2, registry=tiny, record=False)  # CLAP: zero-shot
    assert audio_rates[0] is None and audio_rates[1] == tiny.get("audio").sample_rate


def test_lite_cannot_classify_an_audio_only_file_and_says_why(clips, lite):
    with pytest.raises(MediaError, match="trained head"):
        vc.classify_video(clips["audio_only"], LABELS, registry=lite)


def test_a_clip_without_sound_is_classified_from_frames(clips, tiny):
    result = vc.classify_video(clips["silent"], LABELS, n_frames=3, registry=tiny)
    assert result.audio == [] and "no audio track" in " ".join(result.notes)
    with pytest.raises(ValueError, match=r"frames weight is 0.*no audio track"):
        vc.classify_video(clips["silent"], LABELS, {"visual": 0, "audio": 1}, n_frames=3, registry=tiny)


@pytest.mark.parametrize(
    "labels, message",
    [(["cat"], "at least two"), (["cat", " cat ", ""], "at least two"), (["x" * 81, "y"], "longer")],
)
def test_bad_label_lists_are_refused(clips, tiny, labels, message):
    with pytest.raises(ValueError, match=message):
        vc.classify_video(clips["tone"], labels, registry=tiny)


# -- corrections and label sets ------------------------------------------------------------------------
def test_a_correction_is_stored_with_who_and_the_prediction_provenance(clips, tiny):
    accounts.add_user("bob", "reviewer", "password123")  # a reviewer corrects anyone's clip
    result = vc.classify_video(clips["tone"], LABELS, n_frames=2, user="ana", registry=tiny)
    first = vc.correct_video(result.prediction_id, "a horse", user="bob")
    second = vc.correct_video(
        result.prediction_id, "  a tuning fork  ", user="bob", note="it is a 440 Hz tone"
    )
    assert first.output == {"label": "a horse", "in_label_set": True} and first.user == "bob"
    assert second.output == {"label": "a tuning fork", "in_label_set": False}
    assert second.note == "it is a 440 Hz tone" and second.created_at
    store = default_store()
    assert [c.id for c in store.corrections(result.prediction_id)] == [first.id, second.id]
    prediction = store.prediction(result.prediction_id)
    assert prediction.user == "ana" and prediction.params["timestamps"] == result.timestamps
    assert prediction.model_version and prediction.profile == "tiny"


def test_bad_corrections_are_refused(clips, tiny):
    result = vc.classify_video(clips["tone"], LABELS, n_frames=1, registry=tiny)
    with pytest.raises(ValueError, match="pick the right label"):
        vc.correct_video(result.prediction_id, "   ")
    with pytest.raises(ValueError, match="classify a clip first"):
        vc.correct_video(None, "a cat")
    with pytest.raises(StoreError, match="no video prediction"):
        vc.correct_video(result.prediction_id + 100, "a cat")


def test_a_correction_that_repeats_the_top_label_is_marked_confirmed(clips, tiny):
    result = vc.classify_video(clips["tone"], LABELS, n_frames=1, registry=tiny)
    top, other = result.top("fused", 2)
    assert vc.correct_video(result.prediction_id, top[0]).note == CONFIRMED
    assert vc.correct_video(result.prediction_id, other[0]).note is None


def test_label_sets_are_saved_by_name_and_reused():
    assert vc.load_label_set("demo") == vc.DEMO_LABELS and "demo" in vc.label_set_names()
    saved = vc.save_label_set(
        "kitchen", vc.labels_from_text("kettle\n\n toaster \nkettle\nfridge"), user="ana"
    )
    assert saved == ["kettle", "toaster", "fridge"]
    assert vc.load_label_set("kitchen") == saved and vc.label_set_names() == ["demo", "kitchen"]
    with pytest.raises(StoreError, match="no label set"):
        vc.load_label_set("garden")


# -- CLI ---------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_cli(monkeypatch):
    """`--profile tiny` sets MMDEMO_PROFILE and the process registry: put both back afterwards."""
    from mmdemo.serving import registry

    monkeypatch.setenv("MMDEMO_PROFILE", "tiny")
    yield
    monkeypatch.delenv("MMDEMO_PROFILE")
    registry.configure("auto")


def test_cli_json_has_fused_visual_and_audio_rankings(clips, capsys, tiny_cli):
    code = main(
        [
            "--profile",
            "tiny",
            "classify-video",
            str(clips["tone"]),
            "--labels",
            "cat,dog,tone",
            "--frames",
            "2",
            "--json",
        ]
    )
    assert code == 0
    output = json.loads(capsys.readouterr().out)
    assert set(output) == {"fused", "visual", "audio"}
    for ranking in output.values():
        assert {row["label"] for row in ranking} == {"cat", "dog", "tone"}
        assert all(set(row) == {"label", "score"} and 0 <= row["score"] <= 1 for row in ranking)


@pytest.mark.parametrize(
    "arguments, message",
    [(["corrupt", "--labels", "a,b"], "can be read"), (["tone", "--labels", "a"], "at least two")],
)
def test_cli_bad_input_exits_2_with_one_line(clips, capsys, tiny_cli, arguments, message):
    arguments = [str(clips[arguments[0]]), *arguments[1:]]
    assert main(["--profile", "tiny", "classify-video", *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and error.startswith("mmdemo:")


# -- the tab -----------------------------------------------------------------------------------------
def test_the_plot_shows_the_top_labels_at_every_sampled_time(clips, tiny):
    from mmdemo.ui.video import PLOT_COLUMNS, plot_frame

    labels = [*LABELS, "a clock", "a flower"]
    result = vc.classify_video(clips["tone"], labels, n_frames=3, registry=tiny, record=False)
    frame = plot_frame(result)
    assert list(frame.columns) == PLOT_COLUMNS and len(frame) == 3 * 5
    assert set(frame["label"]) == {label for label, _ in result.top("fused")}
    assert sorted(set(frame["time (s)"])) == result.timestamps
    first = result.labels.index(result.fused[0][0])
    best = frame[frame["label"] == result.fused[0][0]]["score"].to_numpy()
    assert np.allclose(best, result.step_scores[:, first])


def test_the_video_tab_is_scripted_through_public_endpoints_and_its_own_events_are_private():
    from mmdemo.ui.app import build_app

    dependencies = build_app().config["dependencies"]
    public = {d["api_name"] for d in dependencies if d.get("api_visibility") == "public"}
    assert {"classify_video", "correct_video"} <= public
    private = {d["api_name"] for d in dependencies if d.get("api_visibility") == "private"}
    assert {"ui_save_label_set", "ui_load_label_set"} <= private


def test_a_photo_is_classified_as_a_one_frame_clip_with_the_same_provenance(lite):
    from tests.conftest import ASSETS

    result = vc.classify_video(ASSETS / "coffee.jpg", LABELS, registry=lite)
    assert result.fused[0][0] == "a cup of coffee" and result.timestamps == [0.0]
    prediction = default_store().prediction(result.prediction_id)
    assert default_store().media(prediction.media_id).kind == "image"
    assert prediction.params["made_by"]["name"] == lite.info("embed").name

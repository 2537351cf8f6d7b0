"""Reading video clips with PyAV: a few frames spread over the clip, and the sound around them.

Frames are found by seeking to each sampled time, so the cost grows with the number of frames asked
for, not with the clip's length. Sound is read in short windows around the same times and resampled
with librosa to the rate the audio model wants. Every failure is a `MediaError` with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from mmdemo.media.files import VIDEO_SUFFIXES as VIDEO_SUFFIXES  # one list of suffixes, kept in files
from mmdemo.media.files import MediaError, check_file
from mmdemo.media.files import is_video_path as is_video_path

MAX_VIDEO_BYTES = 500 * 1024**2
MAX_DURATION_S = 30 * 60  # longer clips are refused: a few frames cannot summarise them
MAX_FRAMES = 64
FRAME_MAX_SIDE = 512  # embedders look at 224-pixel inputs; keeping less saves memory
AUDIO_WINDOW_S = 10.0  # CLAP listens to 10-second windows


@dataclass(frozen=True)
class ClipInfo:
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int | None = None  # as displayed, after rotation
    height: int | None = None
    fps: float | None = None  # average; variable-rate clips are sampled by time, not by frame number
    rotation: int = 0


@dataclass
class SampledClip:
    info: ClipInfo
    timestamps: list[float]  # seconds from the start, one per frame
    frames: list[Image.Image]
    audio_timestamps: list[float] = field(default_factory=list)  # centre of each sound window
    audio: list[np.ndarray] = field(default_factory=list)  # mono float32 windows at `sample_rate`
    sample_rate: int | None = None
    notes: list[str] = field(default_factory=list)


def _open(path: str | Path) -> av.container.InputContainer:
    path = check_file(path, MAX_VIDEO_BYTES)
    try:
        container = av.open(str(path))
        for stream in container.streams.video:
            stream.thread_type = "AUTO"  # frame threads; must be set before the first decode
        return container
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        raise MediaError(f"{path.name}: not a video or audio file that can be read (corrupt?)") from None


def _duration(container: av.container.InputContainer, stream: av.stream.Stream | None) -> float | None:
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _start(stream: av.stream.Stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0


def _rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Display rotation in degrees counterclockwise, as the first frame's display matrix states it."""
    try:
        for frame in container.decode(stream):
            return round(frame.rotation or 0) % 360
    except av.error.FFmpegError:
        return 0
    finally:
        container.seek(0)
    return 0


def probe(path: str | Path) -> ClipInfo:
    """What a clip holds and how long it lasts, without decoding it."""
    with _open(path) as container:
        return _probe(container, Path(path).name)


def _probe(container: av.container.InputContainer, name: str) -> ClipInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise MediaError(f"{name}: has neither a video nor an audio track")
    duration = _duration(container, video) or _duration(container, audio)
    if not duration or duration <= 0:
        raise MediaError(f"{name}: the clip has no length (empty or unfinished recording)")
    if duration > MAX_DURATION_S:
        raise MediaError(
            f"{name}: the clip lasts {_minutes(duration)}, over the {_minutes(MAX_DURATION_S)} limit; "
            "cut a shorter clip"
        )
    if video is None:
        return ClipInfo(duration_s=duration, has_video=False, has_audio=True)
    rotation = _rotation(container, video)
    width, height = video.codec_context.width, video.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    rate = video.average_rate or video.guessed_rate
    return ClipInfo(
        duration_s=duration,
        has_video=True,
        has_audio=audio is not None,
        width=width,
        height=height,
        fps=float(rate) if rate else None,
        rotation=rotation,
    )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} minutes" if seconds >= 60 else f"{seconds:.1f} seconds"


def sample_times(duration_s: float, count: int) -> list[float]:
    """`count` times spread evenly over the clip: the middle of each of `count` equal parts."""
    count = max(1, count)
    return [round((index + 0.5) * duration_s / count, 3) for index in range(count)]


def _to_image(frame: av.VideoFrame) -> Image.Image:
    image = frame.to_image()
    rotation = round(frame.rotation or 0) % 360
    if rotation:
        image = image.rotate(rotation, expand=True)  # both count counterclockwise
    image.thumbnail((FRAME_MAX_SIDE, FRAME_MAX_SIDE))
    return image


def read_frames(
    container: av.container.InputContainer, times: list[float]
) -> tuple[list[float], list[Image.Image]]:
    """The frame shown at each time (seconds from the start): one seek per time, then a short decode."""
    stream = container.streams.video[0]
    offset = _start(stream)
    found_times: list[float] = []
    frames: list[Image.Image] = []
    for time in times:
        target = offset + time
        container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        shown = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if shown is not None and frame.time > target:
                break
            shown = frame
        if shown is not None:
            found_times.append(round(float(shown.time) - offset, 3))
            frames.append(_to_image(shown))
    return found_times, frames


def read_audio(
    container: av.container.InputContainer, start_s: float, end_s: float, sample_rate: int
) -> np.ndarray:
    """Mono float32 sound between two times (seconds from the start), resampled with librosa."""
    import librosa

    stream = container.streams.audio[0]
    source_rate = stream.codec_context.sample_rate or stream.rate
    to_mono = av.AudioResampler(format="fltp", layout="mono", rate=source_rate)
    offset = _start(stream)
    container.seek(int((offset + start_s) / stream.time_base), stream=stream, backward=True)
    chunks: list[np.ndarray] = []
    chunk_start: float | None = None
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        if chunk_start is None:
            chunk_start = float(frame.time) - offset
        for mono in to_mono.resample(frame):
            chunks.append(mono.to_ndarray()[0])
        if float(frame.time) - offset >= end_s:
            break
    if not chunks or chunk_start is None:
        return np.zeros(0, np.float32)
    samples = np.concatenate(chunks).astype(np.float32)
    first = max(0, round((start_s - chunk_start) * source_rate))
    samples = samples[first : first + max(0, round((end_s - start_s) * source_rate))]
    if source_rate != sample_rate and samples.size:
        samples = librosa.resample(samples, orig_sr=source_rate, target_sr=sample_rate)
    return samples.astype(np.float32)


def audio_windows(
    duration_s: float, times: list[float], window_s: float = AUDIO_WINDOW_S
) -> list[tuple[float, float]]:
    """A window around each time: as long as the gap between times (the whole clip when short), at most
    `window_s`, kept inside the clip."""
    length = min(window_s, duration_s / max(1, len(times)))
    windows = []
    for time in times:
        start = min(max(0.0, time - length / 2), max(0.0, duration_s - length))
        windows.append((start, start + length))
    return windows


def sample_clip(path: str | Path, n_frames: int, audio_sample_rate: int | None) -> SampledClip:
    """`n_frames` frames spread over the clip and, when `audio_sample_rate` is given, the sound around
    them. Audio-only files give sound windows and no frames."""
    path = Path(path)
    if not 1 <= n_frames <= MAX_FRAMES:
        raise MediaError(f"ask for between 1 and {MAX_FRAMES} frames, not {n_frames}")
    with _open(path) as container:
        info = _probe(container, path.name)
        times = sample_times(info.duration_s, n_frames)
        clip = SampledClip(info=info, timestamps=[], frames=[], sample_rate=audio_sample_rate)
        try:
            if info.has_video:
                clip.timestamps, clip.frames = read_frames(container, times)
                if not clip.frames:
                    raise MediaError(f"{path.name}: no frame of the video could be decoded (corrupt?)")
            else:
                clip.notes.append("no video track: classified from its sound only")
            if not info.has_audio:
                clip.notes.append("no audio track: classified from its frames only")
            elif audio_sample_rate:
                for start, end in audio_windows(info.duration_s, times):
                    samples = read_audio(container, start, end, audio_sample_rate)
                    if samples.size:
                        clip.audio_timestamps.append(round((start + end) / 2, 3))
                        clip.audio.append(samples)
                if not clip.audio:
                    clip.notes.append("the audio track holds no sound that could be decoded")
        except av.error.FFmpegError as error:
            raise MediaError(f"{path.name}: the clip is corrupt or truncated ({error})") from None
    return clip


# -- writing clips (sample assets, tests, the benchmark) ---------------------------------------------
def write_clip(
    path: str | Path,
    frames: list[np.ndarray] | None,
    fps: int = 10,
    audio: np.ndarray | None = None,
    sample_rate: int = 22_050,
    rotation: int = 0,
    gop: int | None = None,
    frame_times: list[float] | None = None,
) -> Path:
    """Write RGB frames (H×W×3 uint8) as H.264 and mono float audio as AAC in an MP4 file.

    `frames=None` writes an audio-only file. `rotation` sets the display matrix (counterclockwise).
    `frame_times` (seconds, rising) gives each frame its own time: a variable frame rate."""
    path = Path(path)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        video = None
        if frames:
            height, width = frames[0].shape[:2]
            video = container.add_stream("libx264", rate=fps)
            video.time_base = video.codec_context.time_base = Fraction(1, 1000)
            video.width, video.height, video.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
            video.options = {"preset": "veryfast", "crf": "28"}
            if gop:
                video.codec_context.gop_size = gop
            if rotation:
                video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        samples = np.asarray(audio if audio is not None else [], np.float32).reshape(1, -1)
        written = 0  # audio samples muxed so far: sound is interleaved with the frames it belongs to

        def mux_sound_until(end: int) -> None:
            nonlocal written
            while sound is not None and written < min(end, samples.shape[1]):
                block = samples[:, written : min(written + 1024, samples.shape[1])]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = sample_rate, written
                container.mux(sound.encode(frame))
                written += block.shape[1]

        for index, pixels in enumerate(frames or []):
            assert video is not None
            frame = av.VideoFrame.from_ndarray(pixels[: video.height, : video.width], format="rgb24")
            seconds = frame_times[index] if frame_times else index / fps
            frame.pts, frame.time_base = round(seconds * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
            mux_sound_until(round(seconds * sample_rate) + sample_rate // fps)
        if video is not None:
            container.mux(video.encode())
        mux_sound_until(samples.shape[1])
        if sound is not None:
            container.mux(sound.encode())
    return path

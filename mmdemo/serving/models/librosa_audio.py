"""Hand-made audio features with librosa (lite profile): no zero-shot labels, but input for a trained head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmdemo.serving.models.base import LoadContext, ModelInfo

SAMPLE_RATE = 22_050
N_MELS = 64
N_MFCC = 20


class LibrosaFeatures:
    zero_shot = False
    sample_rate = SAMPLE_RATE
    num_parameters = 0
    dim = 2 * N_MELS + 2 * N_MFCC + 3

    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel and MFCC means and standard deviations, plus centroid, roll-off and zero-crossing rate."""
        import librosa

        y = np.asarray(waveform, dtype=np.float32)
        if y.size < 2048:
            y = np.pad(y, (0, 2048 - y.size))
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_mels=N_MELS))
        mfcc = librosa.feature.mfcc(S=mel, n_mfcc=N_MFCC)
        centroid = librosa.feature.spectral_centroid(y=y, sr=SAMPLE_RATE).mean() / (SAMPLE_RATE / 2)
        rolloff = librosa.feature.spectral_rolloff(y=y, sr=SAMPLE_RATE).mean() / (SAMPLE_RATE / 2)
        zcr = librosa.feature.zero_crossing_rate(y).mean()
        return np.concatenate(
            [
                mel.mean(1) / 80,
                mel.std(1) / 80,
                mfcc.mean(1) / 100,
                mfcc.std(1) / 100,
                [centroid, rolloff, zcr],
            ]
        ).astype(np.float32)

    def encode_audio(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        return (
            np.stack([self.features(w) for w in waveforms])
            if waveforms
            else np.zeros((0, self.dim), np.float32)
        )

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError("the lite audio model has no zero-shot text side; train a head first")


def load(ctx: LoadContext) -> LibrosaFeatures:
    return LibrosaFeatures(ctx.info)

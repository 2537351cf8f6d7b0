"""Checks every correction passes before the store appends it: a real prediction of the right task, and
corrected text that is neither empty nor absurdly long."""

from __future__ import annotations

from mmdemo.data import Prediction, Store, StoreError

CONFIRMED = "confirmed as correct"  # the note on a correction that repeats the model's output


def prediction_to_correct(store: Store, prediction_id: int | None, task: str, first_step: str) -> Prediction:
    """The stored prediction `prediction_id` of `task`; `first_step` says what to do when there is none."""
    if prediction_id is None:
        raise ValueError(f"nothing to correct yet: {first_step}")
    prediction = store.prediction(int(prediction_id))
    if prediction is None or prediction.task != task:
        raise StoreError(f"no {task} prediction #{prediction_id} to correct")
    return prediction


def corrected_text(text: str | None, what: str, max_chars: int, when_empty: str | None = None) -> str:
    """`text` with whitespace collapsed; raises `ValueError` (`when_empty`, or a message naming `what`)
    when it is empty, or when it is over `max_chars`."""
    cleaned = " ".join((text or "").split())
    if not cleaned:
        raise ValueError(when_empty or f"the corrected {what} is empty: type the {what} it should be")
    if len(cleaned) > max_chars:
        raise ValueError(f"the corrected {what} is over {max_chars} characters")
    return cleaned

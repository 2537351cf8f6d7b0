"""Checks every correction passes before the store appends it: a real prediction of the right task, made
by the person correcting it (or they are a reviewer/admin), anonymous writes allowed, and corrected text
that is neither empty nor absurdly long."""

from __future__ import annotations

from mmdemo import accounts
from mmdemo.data import ANONYMOUS, Prediction, Store, StoreError

CONFIRMED = "confirmed as correct"  # the note on a correction that repeats the model's output


def prediction_to_correct(
    store: Store, prediction_id: int | float | str | None, task: str, first_step: str, user: str | None
) -> Prediction:
    """The stored prediction `prediction_id` of `task`, when `user` may correct it; `first_step` says what
    to do when there is none. Raises `AccessDenied` for a prediction someone else made."""
    accounts.require_write(user, "corrections")
    if prediction_id in (None, ""):
        raise ValueError(f"nothing to correct yet: {first_step}")
    number = prediction_number(prediction_id)
    prediction = store.prediction(number)
    if prediction is None or prediction.task != task:
        raise StoreError(f"no {task} prediction #{number} to correct")
    accounts.require_owner(user or ANONYMOUS, prediction.user, f"prediction #{number}", store=store)
    return prediction


def prediction_number(value: int | float | str) -> int:
    """A prediction id from a form or the API: a whole number, or a `ValueError` that says so."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a prediction number") from None
    if not number.is_integer() or not 0 < number < 2**63:  # also refuses nan and inf
        raise ValueError(f"{value!r} is not a prediction number")
    return int(number)


def corrected_text(text: str | None, what: str, max_chars: int, when_empty: str | None = None) -> str:
    """`text` with whitespace collapsed; raises `ValueError` (`when_empty`, or a message naming `what`)
    when it is empty, or when it is over `max_chars`."""
    cleaned = " ".join((text or "").split())
    if not cleaned:
        raise ValueError(when_empty or f"the corrected {what} is empty: type the {what} it should be")
    if len(cleaned) > max_chars:
        raise ValueError(f"the corrected {what} is over {max_chars} characters")
    return cleaned

"""The critique helper's flag threshold, tuned after training and stored beside its LoRA weights.

A 135M verifier's most likely verdict is SUPPORTED for nearly every sentence even when its probabilities
rank the false ones first, so its verdicts are calibrated instead: a sentence is flagged when
P(SUPPORTED) falls under a threshold tuned on held-out planted summaries (the adapter's own training
does it). A helper without the file (the base model, older adapters) keeps the most likely verdict.
"""

from pathlib import Path

import msgspec

from recursum.service.engine.errors import ModelError

VERIFY_CALIBRATION_FILE = "recursum-verify.json"


class VerifyCalibration(msgspec.Struct, frozen=True, kw_only=True):
    """Below `flag_below` P(SUPPORTED) a sentence gets its likeliest other verdict; `sentences` held-out
    sentences of `summaries` tuned it, at `recall` of the planted errors with `precision`."""

    flag_below: float
    summaries: int
    sentences: int
    recall: float
    precision: float

    @classmethod
    def load(cls, directory: str | Path) -> "VerifyCalibration | None":
        """The calibration saved with the helper adapter at `directory`, or None where it has none."""
        path = Path(directory) / VERIFY_CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            return msgspec.json.decode(path.read_bytes(), type=cls)
        except msgspec.DecodeError as error:
            raise ModelError(f"helper calibration {path} is unreadable: {error}") from None

    def save(self, directory: str | Path) -> None:
        (Path(directory) / VERIFY_CALIBRATION_FILE).write_bytes(msgspec.json.encode(self))

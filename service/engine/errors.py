"""Errors a user can cause, raised by the engine and mapped to a CLI message or HTTP 4xx in one place each.

    RecursumError
    ├── InputError                 the document itself is unusable
    │   ├── EmptyDocument          nothing but whitespace after normalization
    │   ├── DocumentTooLarge       more bytes than the configured limit
    │   ├── NotText                binary data or bytes that are not UTF-8
    │   └── NotStreamSafe          a run of combining marks longer than Unicode's stream-safe limit
    ├── ConfigError                settings that cannot work together (names the setting and the fix)
    └── ModelError                 the model cannot be found, fetched or loaded
        └── ModelNotInstalled      the default model was never pulled
"""


class RecursumError(Exception):
    """Base of every error recursum reports to a user instead of a traceback."""


class InputError(RecursumError):
    """Raised when a submitted document cannot be summarized."""


class EmptyDocument(InputError):
    """Raised when a document holds no text after normalization."""


class DocumentTooLarge(InputError):
    """Raised when a document exceeds the configured size limit."""


class NotText(InputError):
    """Raised when a document is binary or not valid UTF-8."""


class NotStreamSafe(InputError):
    """Raised when a document has more combining marks in a row than Unicode's stream-safe format allows."""


class ConfigError(RecursumError):
    """Raised when settings contradict each other or the model's limits."""


class ModelError(RecursumError):
    """Raised when a model cannot be fetched, verified or loaded."""


class ModelNotInstalled(ModelError):
    """Raised when the default model is asked for before `recursum models pull`."""


def public_message(error: Exception) -> str:
    """What a job's or report's owner may read: user-caused errors say what to fix; others stay in the log."""
    if isinstance(error, RecursumError):
        return str(error)
    return f"internal error ({type(error).__name__}); the server log has the details"

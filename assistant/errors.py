"""User-facing errors: a clear one-line message, never a traceback, and nothing lost."""


class StrataError(Exception):
    """Something the user can fix; the message says what and how."""


class AdapterError(StrataError):
    """An adapter was refused (unknown, unsafe, malformed or for another base model)."""


class IngestError(StrataError):
    """A document was rejected; the message is the one-line reason."""


class TrainingDataError(StrataError):
    """Training data was refused; the message names the file and, where it can, the line."""


class TrainingCancelled(StrataError):
    """A training run was stopped on request; nothing was written."""


class TrainingDiverged(StrataError):
    """The loss became NaN or infinite: the learning rate is too high for this data."""


class AnswerCancelled(StrataError):
    """An answer was ended before its end (the server is stopping, or its reader left);
    its ledger row's error reads "cancelled: <why>"."""


class QueueFull(StrataError):
    """More requests are waiting than the engine's queue holds (the batcher's, llama.cpp's);
    the API answers 429."""


class ScoresUnavailable(Exception):
    """A scorer cannot score here (a server that gives no prompt log-probabilities): the
    caller keeps the embedding ranking and records that it did. Not a StrataError: the
    answer goes on without re-ranking."""

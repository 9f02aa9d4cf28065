"""Exceptions that reach users.

A :class:`CardioScarError` carries a single line that says what is wrong and what to fix
(which file, which field, the valid range). The command line prints it without a traceback;
the Slicer panel shows it in an error dialog.
"""


class CardioScarError(ValueError):
    """A problem with the user's input or files, explained in one actionable line."""


class TrainingCancelled(CardioScarError):
    """Raised when the caller's cancel hook asks training or inference to stop."""

"""Exceptions that reach users.

A :class:`CardioScarError` carries a single line that says what is wrong and what to fix
(which file, which field, the valid range). The command line prints it without a traceback;
the Slicer panel shows it in an error dialog.
"""


def advice_in_face_words(message: str, advice: dict[str, str]) -> str:
    """``message`` with each of the library's phrases that ``advice`` words for a face written in the
    face's words (the command line's fibre advice, :data:`cardioscar.simulation.fibres.WITHOUT_RULE`,
    in a manifest's columns; a training option's field, ``training option max_epochs``, as the
    command line's ``--max-epochs``); run before a face renames the options the rest of the message
    names. Here, with the errors, as every face's reworder imports it: the command line's too,
    before any heavy module loads."""
    for library, face in advice.items():
        message = message.replace(library, face)
    return message


class CardioScarError(ValueError):
    """A problem with the user's input or files, explained in one actionable line."""


class TrainingCancelled(CardioScarError):
    """Raised when the caller's cancel hook asks training or inference to stop."""

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


def in_log_format(words: str) -> str:
    """``words`` to join into a log record's format string (each ``%`` doubled, so it reads as itself).

    Why: a face rewords a record's format, never the values filled into it (the Slicer Logic's record
    factory, the batch script's filter), so advice naming a command-line option, passed as a value,
    reached a Slicer console user as "--remote-mask"; joined into the format, each face names its own."""
    return words.replace("%", "%%")


class CardioScarError(ValueError):
    """A problem with the user's input or files, explained in one actionable line."""


class TrainingCancelled(CardioScarError):
    """Raised when the caller's cancel hook asks training or inference to stop."""

"""Errors the CLI turns into one clear line (file, record or option at fault) and exit code."""


class BugAtlasError(Exception):
    """A user-facing failure: the message names what is at fault; no traceback is shown."""

    exit_code = 1


class BadInputError(BugAtlasError):
    """Input that cannot be used as given (a malformed record, an unknown format)."""

    exit_code = 2

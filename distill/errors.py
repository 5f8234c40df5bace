"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class DistillError(Exception):
    """Bad input or a missing artifact; the message says what, where, and what to do."""

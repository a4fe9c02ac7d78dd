"""Errors a user can act on: the CLI prints their message and exits 2, without a traceback."""


class UserError(Exception):
    """Bad input, config or environment, described so a person can fix it."""

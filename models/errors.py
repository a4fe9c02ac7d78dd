"""Errors a user can act on, and the exit statuses of `leanline` (README, "Commands").

The CLI prints a UserError's message and exits EXIT_ERROR, without a traceback. A run
that completes but pushes nothing because a gate or the pusher refused its model exits
EXIT_REFUSED: a scheduler or CI job can then tell "this model is not good enough" from
a failure (fix something and rerun) and from success (0: pushed, or the model already
is the last pushed one, as on a rerun with nothing changed).
"""

EXIT_ERROR = 2
EXIT_REFUSED = 3


class UserError(Exception):
    """Bad input, config or environment, described so a person can fix it."""

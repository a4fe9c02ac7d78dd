"""Names read from an artifact that become paths: each must be a plain file name.

A pusher or a client joins such a name to a directory it was given (the vocabulary
file `tokenizer.json` names, an entry an object store lists). `../..`, a separator or an
absolute path would make that join read or write outside the directory: whoever wrote
the artifact would choose the path. So a name is refused unless it names one entry of
the directory itself.
"""

from __future__ import annotations

from models.errors import UserError


def plain_file_name(name: object, *, artifact: str, field: str) -> str:
    """`name`, when it is one entry of a directory: a non-empty string without `/`, `\\`
    or NUL, and neither `.` nor `..`. Otherwise a UserError naming the artifact, the
    field and the value."""
    if (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(character in name for character in "/\\\0")
    ):
        return name
    raise UserError(
        f"{artifact}: {field} is {name!r}, which is not a plain file name (a name without "
        "'/', '\\', NUL, '.' or '..'): refusing to read or write outside the artifact"
    )

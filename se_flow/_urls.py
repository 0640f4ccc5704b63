"""Database URLs as se-flow shows them: never with their password. One helper for every message,
line of output and JSON that names a database, whether or not the URL parses.

A `postgresql://user:secret@host/db` URL is shown as `postgresql://user:***@host/db`, and a
`password=` query parameter as `password=***`. Text from elsewhere that may quote the URL (a
driver's error message) goes through `without_password`, which masks the URL and the password
wherever they appear. A file path is shown as it is.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["MASK", "shown_database", "without_password"]

MASK = "***"

# The user information ends at the first '@' before the path, as libpq reads it.
_USERINFO = re.compile(r"^(?P<head>postgres(?:ql)?://[^:@/?#]*):(?P<password>[^@/?#]*)@", re.I)
_QUERY = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#]*)", re.I)
# A password this short is masked in a URL but not hunted for in other text: every "pw" or
# "a" in a message would be starred out.
_SHORTEST_SOUGHT = 4


def _passwords(url: str) -> list[str]:
    found = [m.group("password") for m in (_USERINFO.search(url), *_QUERY.finditer(url)) if m]
    return [p for p in found if p]


def shown_database(target: str) -> str:
    """`target` (a database path or URL) as it may be shown: any password replaced by ***."""
    shown = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", target)
    return _QUERY.sub(lambda m: f"{m.group('head')}{MASK}", shown)


def without_password(text: str, url: str) -> str:
    """`text` with the URL `url` masked wherever it appears, and its password (as written and
    percent-decoded) too."""
    masked = text.replace(url, shown_database(url)) if url else text
    for password in _passwords(url):
        for form in {password, unquote(password)}:
            if len(form) >= _SHORTEST_SOUGHT:
                masked = masked.replace(form, MASK)
    return masked

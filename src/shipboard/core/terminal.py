"""What the CLI prints to a terminal: text, never markup or terminal control.

Log lines, error details, names and messages come from the server, and through it from steps,
scanners and other users. Rich would read ``[/]`` in them as markup (and crash), ``[link=…]`` as
a hyperlink, and pass escape sequences through to the terminal (OSC 8 hyperlinks, clearing the
screen, recolouring, a title change); a newline would forge a second log line and a bidi
override would reverse what follows it. Every CLI console is made here: it never interprets
markup or emoji codes, and every string it renders — arguments of ``print``, table cells,
headers — goes through ``printable`` first.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

# Every command's ``--json``: what scripts read instead of the tables.
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on standard output, for scripts.")
]

# C0 controls but tab, DEL, C1 controls (U+009B is a one-byte CSI on some terminals), bidi
# embeddings, overrides, isolates and marks, and the Unicode line and paragraph separators.
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as one line of inert text: every control character shown as an escape."""
    return _UNSAFE.sub(_shown, str(value))


class SafeConsole(Console):
    """A Rich console for text from elsewhere: no markup, no emoji codes, no control characters.

    ``render_str`` is where Rich turns every string it is given into styled text, so overriding
    it covers ``print`` and tables alike; styles are passed as ``style=``, never inside text.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs["markup"] = False
        kwargs["emoji"] = False
        return super().render_str(printable(text), **kwargs)


def console(*, stderr: bool = False, **kwargs: Any) -> Console:
    """The console every CLI command prints through."""
    return SafeConsole(stderr=stderr, **kwargs)

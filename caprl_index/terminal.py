"""Text for the terminal: everything a user or a document controls is shown, never executed.

File names and PDF text may hold escape sequences (`\\x1b[2J` clears the screen, `\\x1b]0;…\\x07` sets the
window title, a bare C1 `\\x9b` is a CSI on some terminals) and rich markup (`[red]`, `[/bold]`, which
crashes rich or makes a name blink). `safe()` turns control characters into visible escapes; `markup()`
also escapes rich markup. JSON output is kept exact (`json_text`), with the control characters that JSON
allows raw written as `\\u` escapes, which decode to the same strings.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

# C0 controls but tab and newline, DEL, C1 controls, and the bidi overrides that reorder what is shown.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object, *, newlines: bool = False) -> str:
    """`text` with control characters shown as escapes (`\\x1b`); newlines too unless `newlines`."""
    value = str(text)
    if not newlines:
        value = value.replace("\n", "\\n").replace("\r", "\\r")
    return _CONTROL.sub(_visible, value)


def markup(text: object, *, newlines: bool = False) -> str:
    """`safe(text)` with rich markup escaped too, for `Console.print`."""
    from rich.markup import escape

    return escape(safe(text, newlines=newlines))


class Styler:
    """ANSI bold/colour and OSC 8 links for text already made `safe`; plain text when `enabled` is False."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, stream: Any) -> Styler:
        """On for a terminal, unless NO_COLOR is set or TERM is dumb (FORCE_COLOR turns it on anyway)."""
        if os.environ.get("FORCE_COLOR"):
            return cls(True)
        tty = bool(getattr(stream, "isatty", lambda: False)())
        return cls(tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb")

    def _sgr(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def cyan(self, text: str) -> str:
        return self._sgr("36", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def link(self, url: str, text: str) -> str:
        """`text` linking to `url` (percent-encoded by the caller: no control characters, no ESC)."""
        return f"\x1b]8;;{url}\x1b\\{text}\x1b]8;;\x1b\\" if self.enabled else text


def path(value: str | bytes | os.PathLike[str]) -> str:
    """A file name for messages: undecodable bytes shown as `\\xNN`, controls escaped."""
    raw = os.fsencode(value)
    return safe(raw.decode("utf-8", errors="backslashreplace"))


def json_text(data: Any) -> str:
    """`data` as indented JSON, non-ASCII kept readable, terminal-active characters as `\\u` escapes."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    # Outside strings JSON has only ASCII punctuation, so these can only sit inside strings.
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

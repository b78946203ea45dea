"""Whether text shows anything: the one test of every "must not be blank" field.

Blank is more than ASCII spaces: a zero-width space (U+200B), a no-break space, a byte order
mark or a bidi mark shows nothing either. A character is invisible when its Unicode category is
a separator (Zs, Zl, Zp), a control character (Cc) or a format character (Cf).
"""

from __future__ import annotations

import unicodedata

INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def has_visible(text: str) -> bool:
    """Whether ``text`` holds at least one character that is not invisible."""
    return any(unicodedata.category(c) not in INVISIBLE_CATEGORIES for c in text)


def visible_or_none(text: str) -> str | None:
    """``text`` without the spaces around it, or None when nothing of it shows (an optional
    note made only of invisible characters is no note)."""
    return text.strip() if has_visible(text) else None


def _invisible_class() -> str:
    """The invisible characters as a regular expression character class: ``\\uXXXX`` escapes
    in the Basic Multilingual Plane, literal characters beyond it, so that it reads alike in
    Python and in ECMAScript (with the ``u`` flag, which OpenAPI 3.1 schemas use)."""
    ranges: list[list[int]] = []
    # Planes 3 to 13 hold ideographs or nothing, 15 and 16 private use: no invisible character.
    for code in (*range(0x30000), *range(0xE0000, 0xF0000)):
        if unicodedata.category(chr(code)) in INVISIBLE_CATEGORIES:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])

    def char(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in ranges)


#: one visible character, as a pattern (the OpenAPI schema of fields that must not be blank)
VISIBLE_PATTERN = f"[^{_invisible_class()}]"

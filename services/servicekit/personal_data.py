"""The one BSN check of ipsflow: the elfproef and "does this text hold a BSN-like number" (stdlib only).

Every service uses these functions: intake for the BSN field itself, the free-text fields of every API (through
``servicekit.vrije_tekst.VrijeTekst``), the process engine for task forms, and notifications for the letters.

What counts as a BSN-like number in a text: nine digits that pass the elfproef, written the ways a person
writes them:
- contiguous, ``123456782``;
- in groups of two to four digits with one and the same separator (space, no-break space, dot or hyphen)
  between every group, ``1234.56.782`` (the notation on the identity card), ``123 456 782``, ``12-34-56-782``.

A run of groups counts only as a whole: ``2026-03-02 1`` (mixed separators) and ``1.234.567,89`` (a one-digit
group) are no candidates, so dates and amounts do not trip it. Digits that touch a digit or a hex letter on
either side are part of a longer token (a hash, an id such as ``ABCDEF123456782``) and are no candidate either.
About one in eleven random 9-digit numbers passes the elfproef, which is the accepted price of refusing a text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_SEPARATORS = " .\\-\u00a0"
# Nine digits in a row, with neither a digit nor a hex letter on either side.
_CONTIGUOUS = re.compile(r"(?<![0-9A-Fa-f])[0-9]{9}(?![0-9A-Fa-f])")
# Groups of 2-4 digits joined by one repeated separator; the run must not go on with another separator + digit.
_GROUPED = re.compile(
    rf"(?<![0-9A-Fa-f])(?<![0-9][{_SEPARATORS}])[0-9]{{2,4}}([{_SEPARATORS}])[0-9]{{2,4}}(?:\1[0-9]{{2,4}})*"
    rf"(?![0-9A-Fa-f])(?![{_SEPARATORS}][0-9])")


def elfproef(number: str) -> bool:
    """The BSN eleven test: 9 ASCII digits, 9*d1 + 8*d2 + ... + 2*d8 - d9 divisible by 11, not all zeros."""
    if len(number) != 9 or not number.isascii() or not number.isdigit() or int(number) == 0:
        return False
    total = sum(int(d) * w for d, w in zip(number[:8], range(9, 1, -1), strict=True)) - int(number[8])
    return total % 11 == 0


def bsn_like_numbers(text: str, own_ids: Iterable[str] = ()) -> list[str]:
    """The BSN-like numbers in ``text`` (as nine digits, in order of appearance; see the module docstring).

    UUIDs and ``own_ids`` (ids and kenmerken of the document itself, each removed only as a whole token) are
    taken out first: their digits are no BSN.
    """
    text = _UUID.sub(" ", text)
    for own in sorted({i for i in own_ids if i}, key=len, reverse=True):
        text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(own)}(?![0-9A-Za-z])", " ", text)
    found: list[tuple[int, str]] = [(m.start(), m.group()) for m in _CONTIGUOUS.finditer(text)]
    for m in _GROUPED.finditer(text):
        digits = re.sub(r"[^0-9]", "", m.group())
        if len(digits) == 9:
            found.append((m.start(), digits))
    return [digits for _, digits in sorted(found) if elfproef(digits)]


def holds_bsn_like_number(text: str, own_ids: Iterable[str] = ()) -> bool:
    """True when ``text`` holds a number that passes the elfproef, written as a person would write a BSN."""
    return bool(bsn_like_numbers(text, own_ids))

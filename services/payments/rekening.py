"""Bank accounts for SEPA credit transfers: IBAN and BIC checks, and text in the EPC character set.

IBAN and BIC are checked with schwifty (a maintained library that carries the IBAN registry of every country: the
country's length and BBAN format, the ISO 13616 check digits and, where a country has them, national check digits),
not with rules of our own. A creditor account must be in the SEPA zone: a pain.001 with service level SEPA cannot
pay anywhere else. The BIC is checked for its ISO 9362 shape and a known country code; whether the bank exists is
not checked (schwifty's bank registry is incomplete, e.g. it lacks RABONL2UXXX).

Text fields of a SEPA message (names, remittance information) may only hold the Latin characters of the EPC
guidelines (EPC217-08, "SEPA requirements for an extended character set"): a-z A-Z 0-9 / - ? : ( ) . , ' + and
space. ``epc_tekst`` transliterates to that set before the pain.001 is built: "Çelik" -> "Celik", "Nguyễn" ->
"Nguyen", "Straße" -> "Strasse"; what has no Latin spelling becomes a space (collapsed).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

_IBAN_CHARACTERS = re.compile(r"^[A-Z0-9]+$")
# Letters that Unicode does not decompose into a base letter and marks.
_LETTERS = str.maketrans({
    "ß": "ss", "ẞ": "SS", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d",
    "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th", "Ł": "L", "ł": "l", "ı": "i", "Ħ": "H", "ħ": "h", "ĸ": "k",
    "Ŀ": "L", "ŀ": "l", "Ŋ": "N", "ŋ": "n", "Ŧ": "T", "ŧ": "t", "ſ": "s",
    # punctuation people type that has an EPC equivalent
    "‘": "'", "’": "'", "‚": "'", "`": "'", "´": "'", "“": "'", "”": "'", "„": "'", '"': "'",
    "–": "-", "—": "-", "‐": "-", "‑": "-", "_": "-", "&": "+", "[": "(", "]": ")", "{": "(", "}": ")",
    ";": ",", "!": ".", "\u00a0": " ", "\t": " ", "\n": " ", "\r": " ",
})
_NOT_EPC = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")
_SPACES = re.compile(r" {2,}")


def normalise_iban(iban: str) -> str:
    return iban.replace(" ", "").upper()


def iban_valid(iban: str) -> bool:
    """An IBAN of a SEPA country, valid by the IBAN registry (length, BBAN format, check digits)."""
    value = normalise_iban(iban)
    if not _IBAN_CHARACTERS.match(value):
        return False
    try:
        return bool(IBAN(value).in_sepa_zone)
    except (SchwiftyException, ValueError):
        return False


def bic_valid(bic: str) -> bool:
    """An ISO 9362 BIC (8 or 11 characters) with a known country code."""
    value = bic.strip().upper()
    if not _IBAN_CHARACTERS.match(value):
        return False
    try:
        BIC(value)
    except (SchwiftyException, ValueError):
        return False
    return True


def epc_tekst(text: str, max_length: int | None = None) -> str:
    """``text`` in the EPC basic Latin character set (see the module docstring), whitespace collapsed, cut to
    ``max_length`` characters."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_LETTERS)
    cleaned = _SPACES.sub(" ", _NOT_EPC.sub(" ", base)).strip()
    return cleaned[:max_length].rstrip() if max_length is not None else cleaned


@dataclass(frozen=True)
class Rekening:
    naam: str
    iban: str
    bic: str

    @property
    def geldig(self) -> bool:
        return bool(epc_tekst(self.naam)) and iban_valid(self.iban) and bic_valid(self.bic)

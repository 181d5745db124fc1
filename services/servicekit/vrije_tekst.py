"""``VrijeTekst``: a str field of an API model that refuses a BSN-like number (400 naming the field).

Free text travels far (case variables a ggz reads, beschikking texts, documents, commands), so it is checked at
the edge, in the normal validation path: ``invalidParams`` names the field with code ``bevat_bsn`` and never
quotes the value. What counts as BSN-like is ``servicekit.personal_data``.

For an optional field with a length limit, put the limit inside the annotation,
``Annotated[str, Field(max_length=n), AfterValidator(geen_bsn)] | None``: a ``Field(max_length=...)`` outside the
Optional cannot reach the str and reports a generic ``too_long`` instead of ``string_too_long``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from servicekit.personal_data import holds_bsn_like_number

CODE = "bevat_bsn"
REASON = "bevat een nummer dat een BSN kan zijn; vermeld geen BSN in vrije tekst"


def geen_bsn(value: str) -> str:
    """Validator: ``value`` unchanged, or a validation error (code ``bevat_bsn``) without the value in it."""
    if holds_bsn_like_number(value):
        raise PydanticCustomError(CODE, REASON)
    return value


VrijeTekst = Annotated[str, AfterValidator(geen_bsn)]

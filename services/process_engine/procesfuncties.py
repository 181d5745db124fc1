"""The functions of ours that every BPMN script and expression may call (``PROCESS_FUNCTIONS``): pure date
helpers over ``servicekit.kalender`` (the one legal calendar), taking and returning ISO strings because that is
what task data holds. The sandbox (``scripting``) puts them in every evaluation's namespace."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final

from servicekit import kalender


def einde_van_dag(datum: str) -> str:
    """The moment (UTC, ISO 8601) a legal day ends: midnight after ``datum`` (an ISO date) in Europe/Amsterdam.

    Awb deadlines are calendar days in the Netherlands; a timer on "the day after the deadline" needs the
    UTC instant, which moves with summer time. Pure, so scripts and timer expressions may call it.
    """
    return kalender.begin_volgende_dag(date.fromisoformat(str(datum)[:10])).isoformat()


def einde_looptijd(start: str, maanden: int) -> str:
    """The last day (ISO date) of a period of ``maanden`` calendar months that starts on ``start``.

    2024-02-01 + 24 months ends on 2026-01-31: the day before the same day number in the end month. When the
    end month is too short for that day number (31 March + 1 month), the period ends on its last day.
    """
    return kalender.einde_periode(date.fromisoformat(str(start)[:10]), int(maanden)).isoformat()


def _dag(moment: str) -> date:
    """The Amsterdam day of an ISO timestamp (a bare date, or a naive timestamp, is taken as it is)."""
    value = datetime.fromisoformat(str(moment))
    return kalender.amsterdam_dag(value) if value.tzinfo else value.date()


def opschortingsdagen(gevraagd_op: str, aangevuld_op: str | None) -> int:
    """Awb 4:15 lid 1 sub a: the days the decision term is suspended, from the day after the request to complete
    (``gevraagd_op``, the day intake asked) up to, not including, the day of the supplement (``aangevuld_op``, a
    timestamp, its Amsterdam day). No supplement: 0."""
    if not aangevuld_op:
        return 0
    return kalender.opschortingsdagen(date.fromisoformat(str(gevraagd_op)[:10]), _dag(aangevuld_op))


def beslisdatum_na_opschorting(beslistermijn_einde: str, opgeschorte_dagen: int) -> str:
    """The decision date (ISO) when the statutory term, which ends on ``beslistermijn_einde`` (grants' toetsing:
    receipt + beslistermijn, before the Atw), is extended by ``opgeschorte_dagen`` (Awb 4:15); the Algemene
    termijnenwet then moves the end of the extended term past a weekend or holiday."""
    einde = date.fromisoformat(str(beslistermijn_einde)[:10]) + timedelta(days=int(opgeschorte_dagen))
    return kalender.termijn_einde(einde).isoformat()


def opgeschorte_beslisdatum(beslisdatum: str, uiterlijk: str, hersteltermijn: str, aangevuld_op: str | None) -> str:
    """For diagram versions deployed before ``opschortingsdagen``/``beslisdatum_na_opschorting`` (their running
    cases still call it): the request day is ``uiterlijk`` minus the hersteltermijn and the statutory end is not
    known, so ``beslisdatum`` stands in for it; the days and the Atw are counted as above."""
    if not aangevuld_op:
        return str(beslisdatum)[:10]
    einde = date.fromisoformat(str(uiterlijk)[:10])
    gevraagd = einde - (kalender.plus_duur(einde, str(hersteltermijn).upper()) - einde)
    dagen = kalender.opschortingsdagen(gevraagd, _dag(aangevuld_op))
    return beslisdatum_na_opschorting(beslisdatum, dagen)


#: Functions of ours that every script and expression may call (pure, no I/O).
PROCESS_FUNCTIONS: Final[dict[str, Any]] = {"einde_van_dag": einde_van_dag, "einde_looptijd": einde_looptijd,
                                             "opschortingsdagen": opschortingsdagen,
                                             "beslisdatum_na_opschorting": beslisdatum_na_opschorting,
                                             "opgeschorte_beslisdatum": opgeschorte_beslisdatum}

"""Benchmark: CPU per decision letter (PDF with the embedded DejaVu font), old code against new, in one process.

Letters are the 21 beschikkingen of ``tests/unit/brief_scenarios.py`` (every kind of letter, names such as
"Çelik" and "Nguyễn"), each a set of glyphs of its own. Per round, in turn:

- old: ``services/notifications/letter.py`` of ``--old`` (a checkout, e.g. ``git worktree add /tmp/old-h5
  0add6d3``), loaded from its file into this process; it imports this checkout's templates and ``Brief``, so
  only the rendering differs. fpdf2 parses the TrueType files for every letter;
- new, cold: this checkout's ``render_pdf`` after its process-wide font cache was emptied, so the round pays
  for parsing the fonts once and for a subset per set of glyphs (every letter of the first pass a miss);
- new, warm: the same letters again (fonts parsed, subsets cached): what a running service pays for a letter
  whose glyphs it has seen before.

Every new letter is compared with the old one: byte for byte, and, where the layout changed (session 13: the
letter's own layout instead of fpdf2's ``write_html``), by its text (pypdf, whitespace collapsed), which must be
the same. CPU is ``time.process_time`` of this process; the figures are medians over the rounds.

    PYTHONPATH=.:services .venv/bin/python tests/perf/bench_letters.py --old /tmp/old-h5 [--rounds 5] [--passes 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pypdf
from fpdf import output as fpdf_output
from tests.unit.brief_scenarios import scenarios

from grants.domain import stel_beschikking_op
from notifications import letter
from notifications.domain import Brief, Contact, Contacten
from notifications.sjablonen import Sjablonen

CONTACTEN = Contacten(ggz={"12345678": Contact("Stichting Ggz Çelik & Nguyễn", "ggz@example.org")},
                      gemeenten={"0957": Contact("Gemeente Roermond", "g@example.org")},
                      gemeentenamen={"0957": "Roermond"})


def brieven() -> list[tuple[Brief, str]]:
    """Each scenario's letter as notifications gets it (through JSON), with its rendered text."""
    uit = []
    sjablonen = Sjablonen()
    for naam, verzoek in sorted(scenarios().items()):
        b = stel_beschikking_op(verzoek)
        beschikking = json.loads(json.dumps({
            "beschikkingId": f"b-{naam}", "kenmerk": b.kenmerk, "soort": b.soort, "datum": b.datum.isoformat(),
            "bezwaartermijnEinde": b.bezwaartermijn_einde.isoformat() if b.bezwaartermijn_einde else None,
            "bedragCents": b.bedrag_cents, "financiering": b.financiering, "mandaat": b.mandaat, "brief": b.brief}))
        brief = Brief.uit_beschikking(beschikking, "A-1", "0957", CONTACTEN, verzoek.ggz_kvk_nummer)
        uit.append((brief, sjablonen.beschikking_tekst(brief)))
    return uit


def tekst(pdf: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).split())


def oude_module(checkout: Path) -> ModuleType:
    bestand = checkout / "services" / "notifications" / "letter.py"
    spec = importlib.util.spec_from_file_location("oude_letter", bestand)
    assert spec and spec.loader, bestand
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    seam = fpdf_output.ftsubset  # a letter.py since session 13 sets fpdf2's subsetter; this checkout's one stays
    spec.loader.exec_module(module)
    fpdf_output.ftsubset = seam
    return module


def ronde(render: Callable[..., bytes], lijst: list[tuple[Brief, str]], sjablonen: Sjablonen,
          passes: int) -> tuple[float, list[bytes]]:
    """CPU ms per letter over ``passes`` passes through the letters, and the PDFs of the last pass."""
    pdfs: list[bytes] = []
    begin = time.process_time()
    for _ in range(passes):
        pdfs = [render(brief, sjablonen, None, tekst) for brief, tekst in lijst]
    return (time.process_time() - begin) * 1000 / (passes * len(lijst)), pdfs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, help="checkout of the old code (a git worktree); without it, new only")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--passes", type=int, default=1, help="passes through the 21 letters per measurement")
    args = ap.parse_args()
    oud = oude_module(args.old) if args.old else None
    sjablonen = Sjablonen()
    lijst = brieven()
    if oud:
        ronde(oud.render_pdf, lijst[:1], sjablonen, 1)  # imports and templates warm on both sides
    ronde(letter.render_pdf, lijst[:1], sjablonen, 1)
    cijfers: dict[str, list[float]] = {"old": [], "new, cold": [], "new, warm": []} if oud else {
        "new, cold": [], "new, warm": []}
    verschillend = 0
    andere_tekst = 0
    grootte = 0
    for _ in range(args.rounds):
        oude_pdfs: list[bytes] = []
        if oud:
            ms, oude_pdfs = ronde(oud.render_pdf, lijst, sjablonen, args.passes)
            cijfers["old"].append(ms)
        letter._schrift.cache_clear()
        ms, _ = ronde(letter.render_pdf, lijst, sjablonen, 1)
        cijfers["new, cold"].append(ms)
        ms, nieuwe_pdfs = ronde(letter.render_pdf, lijst, sjablonen, args.passes)
        cijfers["new, warm"].append(ms)
        verschillend += sum(o != n for o, n in zip(oude_pdfs, nieuwe_pdfs, strict=False))
        andere_tekst += sum(o != n and tekst(o) != tekst(n) for o, n in zip(oude_pdfs, nieuwe_pdfs, strict=False))
        grootte = sum(map(len, nieuwe_pdfs)) // len(nieuwe_pdfs)
    print(f"{len(lijst)} letters x {args.passes} pass(es), {args.rounds} rounds; old = {args.old}")
    print(f"{'side':<10} {'CPU ms/letter median':>21} {'min':>7} {'max':>7}")
    for zijde, waarden in cijfers.items():
        print(f"{zijde:<10} {statistics.median(waarden):>21.1f} {min(waarden):>7.1f} {max(waarden):>7.1f}")
    if oud:
        oud_ms, warm_ms = statistics.median(cijfers["old"]), statistics.median(cijfers["new, warm"])
        print(f"old/new (warm) = {oud_ms / warm_ms:.2f}; PDFs that differ from the old code's: {verschillend} "
              f"(layout), of which with another text: {andere_tekst}")
    print(f"mean PDF {grootte} bytes")
    if andere_tekst:
        raise SystemExit("the new letters' text differs from the old code's")


if __name__ == "__main__":
    main()

"""The data the tests read, all inside the repository (a fresh clone has nothing beside it).

``tests/data/README.md`` says where each file comes from and under which licence.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CORPUS", "DATA", "DRACULAE", "FOILBOARD", "VAMPIRE_BAT", "WAKEBOARDING"]

DATA = Path(__file__).resolve().parent / "data"
# four English Wikipedia articles printed to PDF, a Chinese note and the licence note
CORPUS = DATA / "corpus"
DRACULAE = CORPUS / "bats" / "Desmodus draculae - Wikipedia.pdf"  # 2 pages
VAMPIRE_BAT = CORPUS / "bats" / "Vampire bat - Wikipedia.pdf"  # 5 pages
FOILBOARD = CORPUS / "surfing" / "Foilboard - Wikipedia.pdf"  # 2 pages, the smallest
WAKEBOARDING = CORPUS / "surfing" / "Wakeboarding - Wikipedia.pdf"  # 3 pages

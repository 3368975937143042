"""English titles of ICD-10-CM codes, so a foreign clinician can read a diagnosis.

Source: the CMS/NCHS ICD-10-CM tabular list (US government work, public domain) as
shipped by the pinned ``simple-icd-10-cm`` package (its data: the April 2026 release).
The export's codes are the NHI's ICD-10-CM-2023-TW edition, which is the CMS 2023
code set with Chinese titles. CMS mostly retires a code by expanding it into
children, and the retired code then stays in the tabular list as their parent, so
2023 codes are found here (a title reworded since shows in its current wording); a
code that is not found keeps the Chinese display.

Why lazily: the package parses its 9.7 MB XML when it is imported (about 0.8 s and
150 MB here), and most processes that import ``mhb_import`` never map a diagnosis.
The first look-up pays that once per process; :func:`preload` lets a
long-running server pay it at start instead of in its first import request.
"""

from __future__ import annotations

import warnings
from functools import cache, lru_cache
from types import ModuleType

from .gcpause import gc_paused


def preload() -> None:
    """Load the code list now (idempotent, thread-safe)."""
    _load()


def english_title(code: str) -> str | None:
    """CMS title of a dotted ICD-10-CM code (``E11.9``), None if it is not one.

    Chapters and blocks (``1``, ``A00-A09``) are not codes a diagnosis carries."""
    return _title(code) if code else None


@lru_cache(maxsize=8192)
def _title(code: str) -> str | None:
    cm = _load()
    if not cm.is_category_or_subcategory(code):
        return None
    return cm.get_description(code) or None


@cache  # Python's per-module import lock makes concurrent first calls load it once
def _load() -> ModuleType:
    # its ~100,000 tree nodes live as long as the process: collecting while they
    # are built only slows the load down (1.6 s -> 0.8 s)
    with gc_paused(), warnings.catch_warnings():
        # the package reads its data with importlib.resources.read_text, deprecated
        # since Python 3.11; harmless, and not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm
    return simple_icd_10_cm

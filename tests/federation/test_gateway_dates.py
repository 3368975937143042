"""When a proxy's Consent ends: the period end as FHIR writes it (a date counts to the
end of that day, a month or year to its last day)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from federation.gateway import _consent_end


def _end(value):
    return _consent_end({"provision": {"period": {"start": "2020-01-01", "end": value}}})


def _at(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        ("2026-12-31", _at(2027, 1, 1)),
        ("2026-02", _at(2026, 3, 1)),
        ("2024-02", _at(2024, 3, 1)),
        ("2026-12", _at(2027, 1, 1)),
        ("2026", _at(2027, 1, 1)),
        ("2026-06-01T12:30:00Z", _at(2026, 6, 1, 12, 30)),
        ("2026-06-01T12:30:00+08:00", _at(2026, 6, 1, 4, 30)),
    ],
)
def test_period_ends(end, expected):
    assert _end(end) == expected


@pytest.mark.parametrize("end", [None, 5, "", "soon", "2026-13", "2026-02-30"])
def test_no_usable_end_is_none(end):
    assert _end(end) is None

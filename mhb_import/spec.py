"""Field catalogue of the MHB (健康存摺) medical export, spec revision 2023-05-15.

Each known field has a *kind* that decides its normalisation:

* ``code``  – identifiers and codes: NFKC, strip, upper-case
* ``date``  – YYYYMMDD / YYYYMM: NFKC, strip
* ``ts``    – YYYYMMDDHHMM: NFKC, strip
* ``num``   – numbers: NFKC, strip (JSON numbers become their decimal text)
* ``value`` – result values that may be numbers or words (陽性): NFKC, strip
* ``text``  – Chinese free text: strip only (full-width letters are kept)
"""

from __future__ import annotations

# Sections whose rows carry a nested L3 list, and its key.
CHILD_KEY = {
    "r1": "r1_1",
    "r2": "r2_1",
    "r3": "r3_1",
    "r9": "r9_1",
    "r11": "r11_1",
    "r12": "r12_1",
    "r13": "r13_1",
    "r14": "r14_1",
}

SECTION_TITLES = {
    "r1": "西醫門診資料 (western medicine outpatient)",
    "r2": "住院資料 (inpatient)",
    "r3": "牙醫門診資料 (dental outpatient)",
    "r4": "過敏資料 (allergy)",
    "r5": "器捐或安寧緩和醫療意願 (organ donation / hospice wish)",
    "r6": "預防接種資料 (vaccination)",
    "r7": "檢驗檢查結果 (laboratory results)",
    "r8": "影像或病理檢查報告 (imaging / pathology reports)",
    "r9": "中醫門診資料 (traditional Chinese medicine outpatient)",
    "r10": "成人預防保健結果 (adult preventive health check)",
    "r11": "癌症篩檢結果 (cancer screening)",
    "r12": "糖尿病追蹤資料 (diabetes care programme)",
    "r13": "初期慢性腎病追蹤資料 (early CKD care programme)",
    "r14": "BC肝炎追蹤資料 (hepatitis B/C care programme)",
}

SECTIONS = tuple(SECTION_TITLES)


def _pairs(first: int, last: int) -> dict[str, str]:
    """Alternating code / name fields (次診斷碼N, 次診斷名稱N ...)."""
    out: dict[str, str] = {}
    for n in range(first, last + 1):
        out[str(n)] = "code" if (n - first) % 2 == 0 else "text"
    return out


def _fields(prefix: str, kinds: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}.{k}": v for k, v in kinds.items()}


_OUTPATIENT_HEAD = {"1": "code", "2": "text", "3": "code", "4": "text"}

FIELDS: dict[str, dict[str, str]] = {
    "r1": _fields(
        "r1",
        {
            **_OUTPATIENT_HEAD,
            "5": "date",
            "6": "date",
            "7": "code",
            "8": "code",
            "9": "text",
            "10": "code",
            "11": "text",
            "12": "num",
            "13": "num",
            **_pairs(14, 27),
        },
    ),
    "r1_1": _fields("r1_1", {"1": "code", "2": "text", "3": "num", "4": "num"}),
    "r2": _fields(
        "r2",
        {
            **_OUTPATIENT_HEAD,
            "5": "date",
            "6": "date",
            "7": "date",
            "8": "date",
            "9": "code",
            "10": "code",
            "11": "text",
            "12": "code",
            "13": "text",
            "14": "num",
            "15": "num",
            **_pairs(16, 91),
        },
    ),
    "r2_1": _fields(
        "r2_1", {"1": "code", "2": "date", "3": "date", "4": "code", "5": "text", "6": "num"}
    ),
    "r3": _fields(
        "r3",
        {
            **_OUTPATIENT_HEAD,
            "5": "date",
            "6": "code",
            "7": "code",
            "8": "text",
            "9": "code",
            "10": "text",
            "11": "num",
            "12": "num",
            **_pairs(13, 26),
        },
    ),
    "r3_1": _fields(
        "r3_1", {"1": "code", "2": "text", "3": "num", "4": "code", "5": "text", "6": "num"}
    ),
    "r4": _fields(
        "r4",
        {
            "1": "date",
            "2": "text",
            "3": "text",
            "4": "code",
            "5": "text",
            "6": "code",
            "7": "code",
            "8": "text",
            "9": "text",
            "10": "text",
            "11": "text",
            "12": "text",
        },
    ),
    "r5": _fields("r5", {"1": "date", "2": "code", "3": "text"}),
    "r6": _fields("r6", {"1": "date", "3": "text", "5": "text"}),
    "r7": _fields(
        "r7",
        {
            **_OUTPATIENT_HEAD,
            "5": "date",
            "6": "date",
            "7": "ts",
            "8": "code",
            "9": "text",
            "10": "text",
            "11": "value",
            "12": "value",
        },
    ),
    "r8": _fields(
        "r8",
        {
            **_OUTPATIENT_HEAD,
            "5": "date",
            "6": "date",
            "7": "ts",
            "8": "code",
            "9": "text",
            "10": "text",
        },
    ),
    "r10": _fields(
        "r10",
        {
            "1": "code",
            "2": "text",
            "3": "code",
            "4": "code",
            "5": "date",
            **{str(n): "num" for n in (6, 7, 8, 9, 10, 11, 14, 15, 16, 17, 20, 23, 24, 25, 31, 32)},
            **{str(n): "code" for n in (12, 18, 21, 26, 29, 33, 35, 37, 39, 41)},
            **{str(n): "text" for n in (13, 19, 22, 27, 30, 34, 36, 38, 40, 42)},
            "28": "value",
        },
    ),
    "r11": _fields("r11", {"1": "text", "2": "text"}),
    "r11_1": _fields("r11_1", {"1": "date", "2": "text", "3": "text", "4": "text"}),
    "r12_1": _fields(
        "r12_1",
        {
            "1": "text",
            "2": "date",
            "3": "date",
            "4": "date",
            **{str(n): "value" for n in range(5, 14)},
        },
    ),
    "r13_1": _fields(
        "r13_1", {"1": "text", "2": "date", **{str(n): "value" for n in range(3, 11)}}
    ),
    # r14_1.9 is not in the field table but appears in the spec's own sample
    # (an extra marker column shifts GOT/GPT/ultrasound by one); see docs.
    "r14_1": _fields(
        "r14_1", {"1": "text", "2": "date", "3": "text", **{str(n): "value" for n in range(4, 10)}}
    ),
}
FIELDS["r9"] = {k.replace("r3.", "r9.", 1): v for k, v in FIELDS["r3"].items()}
FIELDS["r9_1"] = _fields("r9_1", {"1": "code", "2": "text", "3": "num", "4": "num"})
for _s in ("r12", "r13", "r14"):
    FIELDS[_s] = _fields(_s, {"1": "date", "2": "text", "3": "date"})

# Basic-data fields. b1.1 is the (masked) national ID: read, never kept.
# The spec's table calls the request date b2.1, its sample and real files b1.2.
BDATA_FIELDS = {"b1.1", "b1.2", "b2.1"}
# r0: the download statement (聲明書) found in real files; known, not mapped.
IGNORED_SECTIONS = {"r0"}

NO_DATA = "無資料"

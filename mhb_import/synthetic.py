# ruff: noqa: E501  (data tables are kept one row per line)
"""Synthetic MHB exports (no real patient data) and JSON / XML serialisers.

Used by the tests, the fixtures and ``benchmarks/mhb_import.py``. All
facility and drug codes here are made up; names follow the spec's examples.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from typing import Any

from lxml import etree

from .spec import CHILD_KEY

Doc = dict[str, Any]

SCENARIO_VISITS = (
    # date, ICD-10-CM (MHB form), Chinese name, drug code, drug name, qty, days
    ("20171010", "E119", "第二型糖尿病，未伴有併發症", "AC00000110", 'Iunaidon Tablets "Yu Sheng"', "56.00", "28"),
    ("20170716", "G40909", "癲癇，未明示，非頑治型，無癲癇重積狀態", "AC00000210", "Neurtrol F.C. Tablets 300 mg", "60.00", "30"),
    ("20170525", "G463", "腦幹中風症候群", "AC00000310", "Cofarin Tab 1 mg", "28.00", "28"),
    ("20170520", "G463", "腦幹中風症候群", "AC00000310", "Cofarin Tab 1 mg", "7.00", "7"),
    ("20170120", "R809", "蛋白尿，未明示", "AC00000410", "Kaluril Tablets 5 mg", "28.00", "28"),
)  # fmt: skip


def scenario_export() -> Doc:
    """The usability-study patient (scenario.md Table 1): five 2017 visits."""
    rows = []
    for n, (day, icd, dx, drug, drug_name, qty, days) in enumerate(SCENARIO_VISITS, start=1):
        rows.append(
            {
                "r1.1": "1",
                "r1.2": "臺北業務組",
                "r1.3": "9900000101",
                "r1.4": "示範醫院",
                "r1.5": day,
                "r1.6": "",
                "r1.7": f"{n:04d}",
                "r1.8": icd,
                "r1.9": dx,
                "r1.10": "",
                "r1.11": "",
                "r1.12": "50",
                "r1.13": "420",
                "r1_1": [
                    {"r1_1.1": drug, "r1_1.2": drug_name, "r1_1.3": qty, "r1_1.4": days},
                    {"r1_1.1": "00109C", "r1_1.2": "門診診察費", "r1_1.3": "1.00", "r1_1.4": "0"},
                ],
            }
        )
    return {
        "myhealthbank": {
            "bdata": {
                "b1.1": "Z99999****",
                "b1.2": "20180101",
                "r1": rows,
                **{k: [{k.lower(): "無資料"}] for k in ("r2", "r3", "r4", "r5", "r6", "r7",
                                                      "r8", "r9", "r10", "r11", "R12", "R13", "R14")},
            }
        }
    }  # fmt: skip


_DX = [
    ("E119", "第二型糖尿病，未伴有併發症"),
    ("I10", "本態性（原發性）高血壓"),
    ("E785", "高血脂症"),
    ("J069", "急性上呼吸道感染"),
    ("K219", "胃食道逆流性疾病，未伴有食道炎"),
    ("M545", "下背痛"),
    ("N183", "慢性腎臟病第三期"),
]
_DRUGS = [
    ("AC00000110", "二甲雙胍錠500毫克", 56, 28),
    ("AC00000510", "脈優錠５毫克", 28, 28),
    ("AC00000610", "立普妥膜衣錠10毫克", 28, 28),
    ("AC00000710", "普拿疼錠500毫克", 12, 3),
    ("BC00000810", "耐適恩錠20毫克", 14, 14),
]
_LABS = [
    ("08011C", "全套血液檢查", "HGB", lambda r: f"{r.uniform(11, 17):.1f}", "[13-17]"),
    ("09005C", "血糖", "GLUCOSE AC", lambda r: str(r.randint(80, 180)), "70-100"),
    ("09006C", "醣化血紅素", "HbA1c", lambda r: f"{r.uniform(5, 9):.1f}", "4.0-6.0"),
    ("09015C", "肌酸酐", "Creatinine", lambda r: f"{r.uniform(0.6, 2):.2f}", "0.7~1.3"),
    ("06013C", "尿生化檢查", "URINE PROTEIN", lambda r: r.choice(["陰性", "陽性", "±"]), ""),
]
_VACCINES = ["季節性流感疫苗", "B 型肝炎遺傳工程疫苗", "COVID-19疫苗（Moderna）",
             "23價肺炎鏈球菌多醣體疫苗", "破傷風減量白喉混合疫苗", "不明疫苗甲"]  # fmt: skip


def synthetic_export(visits: int = 60, years: int = 10, seed: int = 7) -> Doc:
    """A deterministic export covering every section r1-r14 (plus known quirks)."""
    rnd = random.Random(seed)
    end = date(2025, 12, 31)
    span = years * 365

    def day(i: int, n: int) -> date:
        return end - timedelta(days=int(span * i / max(n, 1)))

    facilities = [(f"99000{n:05d}", f"合成醫院{n}") for n in range(1, 21)]
    r1, r3, r9, r2, r7, r8 = [], [], [], [], [], []
    for i in range(visits):
        d = day(i, visits)
        ds = d.strftime("%Y%m%d")
        fac, fac_name = rnd.choice(facilities)
        kind = rnd.random()
        dx = rnd.choice(_DX)
        sec = rnd.choice(_DX)
        if kind < 0.7:
            lines = [
                {"r1_1.1": c, "r1_1.2": nm, "r1_1.3": f"{q}.00", "r1_1.4": str(dd)}
                for c, nm, q, dd in rnd.sample(_DRUGS, rnd.randint(1, 3))
            ]
            lines.append(
                {"r1_1.1": "00109C", "r1_1.2": "門診診察費", "r1_1.3": "1.00", "r1_1.4": "0"}
            )
            r1.append({"r1.1": "1", "r1.2": "臺北業務組", "r1.3": fac, "r1.4": fac_name,
                       "r1.5": ds, "r1.6": "", "r1.7": f"{i % 10000:04d}", "r1.8": dx[0],
                       "r1.9": dx[1], "r1.10": "", "r1.11": "", "r1.12": str(rnd.choice([0, 50, 150])),
                       "r1.13": str(rnd.randint(150, 1500)), "r1.14": sec[0], "r1.15": sec[1],
                       "r1_1": lines})  # fmt: skip
        elif kind < 0.8:
            r3.append({"r3.1": "1", "r3.2": "臺北業務組", "r3.3": fac, "r3.4": fac_name + "牙科",
                       "r3.5": ds, "r3.6": f"{i % 10000:04d}", "r3.7": "K0530", "r3.8": "慢性牙周炎",
                       "r3.9": "91004C", "r3.10": "牙周病緊急處置", "r3.11": "50", "r3.12": "800",
                       "r3.23": "0CDWXZ1", "r3.24": "經由外部下部牙齒單一齒拔除術",
                       "r3_1": [{"r3_1.1": "92014C", "r3_1.2": "複雜性拔牙", "r3_1.3": "1.00",
                                 "r3_1.4": "36", "r3_1.5": "左下第一大臼齒", "r3_1.6": "0"}]})  # fmt: skip
        elif kind < 0.9:
            r9.append({"r9.1": "1", "r9.2": "臺北業務組", "r9.3": fac, "r9.4": fac_name + "中醫",
                       "r9.5": ds, "r9.6": f"{i % 10000:04d}", "r9.7": "M545", "r9.8": "下背痛",
                       "r9.9": "B41", "r9.10": "針灸治療", "r9.11": "50", "r9.12": "350",
                       "r9_1": [{"r9_1.1": "A003284100", "r9_1.2": "川牛膝濃縮散", "r9_1.3": "21.00",
                                 "r9_1.4": "7"}]})  # fmt: skip
        else:
            out = d + timedelta(days=rnd.randint(2, 9))
            row = {"r2.1": "1", "r2.2": "臺北業務組", "r2.3": fac, "r2.4": fac_name,
                   "r2.5": ds, "r2.6": out.strftime("%Y%m%d"), "r2.7": ds,
                   "r2.8": out.strftime("%Y%m%d"), "r2.9": f"{i % 10000:04d}", "r2.10": "J189",
                   "r2.11": "肺炎，未明示病原體", "r2.12": "0BJ08ZZ", "r2.13": "經由自然開口內視鏡檢查",
                   "r2.14": "1200", "r2.15": "45000", "r2.16": dx[0], "r2.17": dx[1],
                   "r2_1": [{"r2_1.1": "1", "r2_1.2": ds, "r2_1.3": out.strftime("%Y%m%d"),
                             "r2_1.4": "02007A", "r2_1.5": "一般病床住院診察費(天)", "r2_1.6": "5"},
                            {"r2_1.1": "2", "r2_1.2": ds, "r2_1.3": out.strftime("%Y%m%d"),
                             "r2_1.4": "AC00000910", "r2_1.5": "安滅菌注射劑1公克", "r2_1.6": "10.00"}]}  # fmt: skip
            r2.append(row)
        if i % 3 == 0:
            for code, order, item, val, rng in rnd.sample(_LABS, 2):
                r7.append({"r7.1": "1", "r7.2": "臺北業務組", "r7.3": fac, "r7.4": fac_name,
                           "r7.5": ds, "r7.6": ds, "r7.7": ds + "1200", "r7.8": code,
                           "r7.9": order, "r7.10": item, "r7.11": val(rnd), "r7.12": rng})  # fmt: skip
        if i % 40 == 0:
            r8.append({"r8.1": "1", "r8.2": "臺北業務組", "r8.3": fac, "r8.4": fac_name,
                       "r8.5": ds, "r8.6": ds, "r8.7": ds + "1500", "r8.8": "32001C",
                       "r8.9": "胸腔檢查", "r8.10": "胸部X光：心臟大小正常，肺野清晰，無明顯異常。"})  # fmt: skip
    if r7:  # quirk: the same lab row twice
        r7.append(dict(r7[0]))
    n_vacc = max(visits // 50, len(_VACCINES))
    r6 = [{"r6.1": day(i, n_vacc).strftime("%Y%m%d"), "r6.3": _VACCINES[i % len(_VACCINES)],
           "r6.5": "合成衛生所"} for i in range(n_vacc)]  # fmt: skip
    r4 = [{"r4.1": "20200301", "r4.2": "Mefenamic acid 250mg cap", "r4.3": "", "r4.4": "9900000001",
           "r4.5": "合成醫院1", "r4.6": "02", "r4.7": "12345678", "r4.8": "臺北市合成路1號",
           "r4.9": "輕度", "r4.10": "皮疹(Rash)", "r4.11": "", "r4.12": "雲端登錄"},
          {"r4.1": "20220815", "r4.2": "Penicillin", "r4.4": "9900000002", "r4.5": "合成醫院2",
           "r4.9": "重度", "r4.10": "呼吸困難(Dyspnea)", "r4.12": "雲端登錄"}]  # fmt: skip
    r5 = [{"r5.1": "20190301", "r5.2": "2", "r5.3": "同意安寧緩和醫療"},
          {"r5.1": "20190301", "r5.2": "1", "r5.3": "同意器官捐贈"}]  # fmt: skip
    r10 = [{"r10.1": "9900000003", "r10.2": "合成醫院3", "r10.3": "02", "r10.4": "23456789",
            "r10.5": f"{2016 + 3 * k}0330", "r10.6": "170", "r10.7": "72", "r10.8": "24.9",
            "r10.9": "86", "r10.10": "126", "r10.11": "82", "r10.12": "2",
            "r10.13": "異常，建議：請洽詢醫師", "r10.14": "213", "r10.15": "150", "r10.16": "45",
            "r10.17": "130", "r10.18": "1", "r10.19": "正常", "r10.20": "103", "r10.21": "2",
            "r10.22": "異常，建議：請洽詢醫師", "r10.23": "15", "r10.24": "0.9", "r10.25": "85",
            "r10.26": "1", "r10.27": "正常", "r10.28": "-", "r10.29": "1", "r10.30": "正常",
            "r10.31": "22", "r10.32": "25", "r10.33": "1", "r10.34": "正常", "r10.35": "1",
            "r10.36": "陰性", "r10.37": "1", "r10.38": "陰性", "r10.39": "1", "r10.40": "陰性",
            "r10.41": "1", "r10.42": "陰性"} for k in range(3)]  # fmt: skip
    r11 = [{"r11.1": "大腸癌篩檢", "r11.2": "定量免疫法糞便潛血檢查",
            "r11_1": [{"r11_1.1": "20210214", "r11_1.2": "合成診所", "r11_1.3": "無異常",
                       "r11_1.4": "無異常：建議每2年定期接受糞便潛血檢查。"}]},
           {"r11.1": "口腔癌篩檢", "r11.2": "口腔黏膜檢查",
            "r11_1": [{"r11_1.1": "20230504", "r11_1.2": "合成診所", "r11_1.3": "異常",
                       "r11_1.4": "異常：請至口腔顎面外科確診。"}]}]  # fmt: skip
    r12 = [{"r12.1": "20191204", "r12.2": "合成診所", "r12.3": "20200314"},
           {"r12.1": "20200601", "r12.2": "合成醫院1", "r12.3": "",
            "r12_1": [{"r12_1.1": "追蹤管理", "r12_1.2": "20210707", "r12_1.3": "20210707",
                       "r12_1.4": "20210708", "r12_1.5": "137.00", "r12_1.6": "71.00",
                       "r12_1.7": "7.60", "r12_1.8": "100.00", "r12_1.9": "202.00",
                       "r12_1.10": "1.00", "r12_1.11": "76.60", "r12_1.12": "",
                       "r12_1.13": "74.55"}]}]  # fmt: skip
    r13 = [{"r13.1": "20160421", "r13.2": "合成醫院1", "r13.3": "",
            "r13_1": [{"r13_1.1": "追蹤管理", "r13_1.2": "20200707", "r13_1.3": "137.00",
                       "r13_1.4": "71.00", "r13_1.5": "76.60", "r13_1.6": "", "r13_1.7": "1.00",
                       "r13_1.8": "100.00", "r13_1.9": "7.60", "r13_1.10": "74.60"}]}]  # fmt: skip
    r14 = [{"r14.1": "20111228", "r14.2": "合成醫院2", "r14.3": "",
            "r14_1": [{"r14_1.1": "追蹤管理", "r14_1.2": "20210428", "r14_1.3": "B 型肝炎",
                       "r14_1.4": "陽性", "r14_1.5": "陰性", "r14_1.6": "26.00", "r14_1.7": "27.00",
                       "r14_1.8": "正常"},
                      {"r14_1.1": "追蹤管理", "r14_1.2": "20181114", "r14_1.3": "C 型肝炎",
                       "r14_1.4": "陰性", "r14_1.5": "陰性", "r14_1.6": "陽性", "r14_1.7": "25.00",
                       "r14_1.8": "14.00", "r14_1.9": "正常"}]}]  # fmt: skip
    bdata: Doc = {"b1.1": "Z99999****", "b1.2": "20260101"}
    for key, rows in (("r1", r1), ("r2", r2), ("r3", r3), ("r4", r4), ("r5", r5), ("r6", r6),
                      ("r7", r7), ("r8", r8), ("r9", r9), ("r10", r10), ("r11", r11),
                      ("R12", r12), ("R13", r13), ("R14", r14)):  # fmt: skip
        bdata[key] = rows or [{key.lower(): "無資料"}]
    return {"myhealthbank": {"bdata": bdata}}


def dumps_json(doc: Doc, *, bom: bool = False) -> bytes:
    data = json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def dumps_xml(doc: Doc) -> bytes:
    """The XML form of the same export (spec IHK_XML_X2: repeated <rN> elements)."""
    root = etree.Element("myhealthbank")
    bdata = etree.SubElement(root, "bdata")
    for key, value in doc["myhealthbank"]["bdata"].items():
        tag = key.lower()
        if not isinstance(value, list):
            etree.SubElement(bdata, tag).text = "" if value is None else str(value)
            continue
        for row in value:
            _row_xml(bdata, tag, row)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def _row_xml(parent, tag: str, row: Any) -> None:
    elem = etree.SubElement(parent, tag)
    if len(row) == 1 and next(iter(row.values())) == "無資料":
        elem.text = "無資料"
        return
    child_key = CHILD_KEY.get(tag)
    for key, value in row.items():
        if key == child_key:
            for child in value if isinstance(value, list) else [value]:
                _row_xml(elem, key, child)
        else:
            etree.SubElement(elem, key.lower()).text = "" if value is None else str(value)

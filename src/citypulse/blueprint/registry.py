"""The six smart areas and two Blueprint 2.0 chapters: fixed ids, bilingual names, order.

Ids are part of URLs (``/areas/{id}``) and of the data, so they live in code; the loader checks
the YAML against this list. The Chinese descriptions are our own translations of the YAML's
English descriptions (the Chinese names are the official ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AreaKind = Literal["smart_area", "chapter"]


@dataclass(frozen=True, slots=True)
class AreaInfo:
    id: str
    kind: AreaKind
    name_en: str
    name_zh: str
    description_zh: str


AREAS: tuple[AreaInfo, ...] = (
    AreaInfo(
        "mobility",
        "smart_area",
        "Smart Mobility",
        "智慧出行",
        "讓市民和貨物更方便、更安全地往來：交通數據及分析、實時公共交通資訊、隧道及泊車電子繳費、"
        "智能路口、自動駕駛車輛及機場。",
    ),
    AreaInfo(
        "living",
        "smart_area",
        "Smart Living",
        "智慧生活",
        "市民的日常服務：數碼身份及支付、免費公共 Wi-Fi、電子健康及遙距醫療、"
        "樂齡科技、房屋及康樂服務。",
    ),
    AreaInfo(
        "environment",
        "smart_area",
        "Smart Environment",
        "智慧環境",
        "氣候行動、更潔淨的能源及電動車，以及監測供水、排水、衞生和廢物的感應器，讓城市環境管理更有效率。",
    ),
    AreaInfo(
        "people",
        "smart_area",
        "Smart People",
        "智慧市民",
        "培育數碼技能及創科人才：學校資訊科技實驗室、實習計劃、人才入境及研究人才計劃，以及長者數碼共融。",
    ),
    AreaInfo(
        "government",
        "smart_area",
        "Smart Government",
        "智慧政府",
        "政府的數碼基建及服務：雲端及大數據平台、智慧燈柱、空間數據、開放數據、電子呈交及精簡發牌，"
        "以及各部門的科技應用。",
    ),
    AreaInfo(
        "economy",
        "smart_area",
        "Smart Economy",
        "智慧經濟",
        "金融科技、貿易及法律科技、再工業化及科研，以及旅遊、強積金和物流的數碼平台。",
    ),
    AreaInfo(
        "covid-19",
        "chapter",
        "Use of I&T in Combating COVID-19",
        "善用創新科技應對疫情",
        "《藍圖2.0》新增的抗疫科技章節：家居檢疫監察、接觸風險通知、電子疫苗接種及檢測紀錄、健康碼、"
        "預約系統及遙距營商支援。",
    ),
    AreaInfo(
        "smart-village",
        "chapter",
        "Smart Village",
        "智慧鄉村",
        "《藍圖2.0》新增的章節，為鄉郊及偏遠地區提出先導構思：網絡連接、遙距醫療、偵測非法棄置、"
        "野生動物、水浸及山火，以及村落保安和鄉郊道路安全。",
    ),
)

AREA_IDS: tuple[str, ...] = tuple(a.id for a in AREAS)
_BY_ID = {a.id: a for a in AREAS}


def area_info(area_id: str) -> AreaInfo | None:
    return _BY_ID.get(area_id)

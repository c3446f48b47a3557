"""Every UI string of the portal templates and routes has a Traditional Chinese translation in
the merged catalogues, and the portal's own catalogue is valid and really Chinese."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from babel.messages.pofile import read_po

import citypulse.web as web
from citypulse.blueprint.web import EVIDENCE_LABELS, FIELD_LABELS, STATUS_LABELS
from citypulse.web.i18n import gettext

WEB = Path(web.__file__).parent
SAME_IN_BOTH = {"JSON"}
_CALL = re.compile(r"""_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\)""")
_GETTEXT = re.compile(r"""gettext\(\s*lang,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\)""")
_FIELD_ERROR = re.compile(r"""FieldError\(\s*[\w"]+,\s*"((?:[^"\\]|\\.)*)\"""")


def portal_msgids() -> set[str]:
    ids: set[str] = set()
    for tpl in (WEB / "templates" / "portal").glob("*.html"):
        ids |= {ast.literal_eval(m) for m in _CALL.findall(tpl.read_text("utf-8"))}
    sources = [WEB / "routes" / f"{n}.py" for n in ("home", "initiatives", "auth")]
    sources += [WEB.parent / "blueprint" / n for n in ("web.py", "service.py")]
    for src in sources:
        text = src.read_text("utf-8")
        ids |= {ast.literal_eval("(" + m + ")") for m in _GETTEXT.findall(text)}
        ids |= set(_FIELD_ERROR.findall(text))
    for labels in (STATUS_LABELS, EVIDENCE_LABELS, FIELD_LABELS):
        ids |= set(labels.values())
    return ids


def test_every_portal_string_is_translated() -> None:
    ids = portal_msgids()
    assert len(ids) > 200
    missing = sorted(i for i in ids if i not in SAME_IN_BOTH and gettext("zh-Hant", i) == i)
    assert missing == []


def test_catalogue_is_valid_traditional_chinese() -> None:
    po = WEB / "i18n" / "zh_Hant" / "LC_MESSAGES" / "portal.po"
    with po.open("rb") as fh:
        catalog = read_po(fh, locale="zh_Hant")
    messages = [m for m in catalog if m.id]
    assert len(messages) > 200
    for m in messages:
        assert m.string, m.id
        for name in re.findall(r"%\((\w+)\)s", str(m.id)):
            assert f"%({name})s" in str(m.string), m.id  # placeholders survive translation
    # Traditional, not Simplified, characters in a few telling words
    text = po.read_text("utf-8")
    for simplified in ("进度", "数据", "搜索", "登录", "页面"):
        assert simplified not in text
    assert gettext("zh-Hant", "Progress") == "進度"

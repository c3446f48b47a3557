"""Languages and UI-string translation (gettext catalogues under ``web/i18n``).

English has no URL prefix; Traditional Chinese lives under ``/zh-hant/``. The ``.po`` catalogues
are read at start-up with Babel, so no compile step is needed to run from a checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

I18N_DIR = Path(__file__).parent / "i18n"


@dataclass(frozen=True, slots=True)
class Language:
    code: str  # gettext / Babel locale, e.g. zh_Hant
    tag: str  # BCP 47 for <html lang>, e.g. zh-Hant
    prefix: str  # URL prefix, "" for the default language
    label: str  # shown in the switcher, in its own language


LANGUAGES: dict[str, Language] = {
    "en": Language("en", "en", "", "English"),
    "zh-Hant": Language("zh_Hant", "zh-Hant", "/zh-hant", "繁中"),
}
DEFAULT_LANGUAGE = "en"


def language_for_path(path: str) -> tuple[str, str]:
    """Split a request path into (language tag, path without the language prefix)."""
    for tag, lang in LANGUAGES.items():
        if lang.prefix and (path == lang.prefix or path.startswith(lang.prefix + "/")):
            return tag, path[len(lang.prefix):] or "/"
    return DEFAULT_LANGUAGE, path


def localized_path(path: str, tag: str) -> str:
    """The same page in language ``tag`` (``path`` is unprefixed)."""
    prefix = LANGUAGES[tag].prefix
    return (prefix + path) if prefix else path


@cache
def translations(tag: str) -> NullTranslations:
    lang = LANGUAGES.get(tag)
    if lang is None or not lang.prefix:
        return NullTranslations()
    # One catalogue per feature (messages.po, portal.po, ...), merged: features edit their own.
    strings: dict[str | tuple[str, Any], str] = {}
    for po in sorted((I18N_DIR / lang.code / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang.code)
        for m in catalog:
            # Only singular messages are used in the UI; plural entries would carry tuples.
            if isinstance(m.id, str) and isinstance(m.string, str) and m.string and not m.fuzzy:
                strings[m.id] = m.string
    if not strings:
        return NullTranslations()
    trans = Translations()
    trans._catalog = strings  # Babel's Translations is a GNUTranslations: this is its table
    trans.plural = lambda n: int(n != 1)
    return trans


def gettext(tag: str, message: str) -> str:
    return translations(tag).gettext(message)


def pick(tag: str, en: str | None, zh: str | None) -> str:
    """Choose a bilingual content field, falling back to the other language."""
    if tag.startswith("zh"):
        return zh or en or ""
    return en or zh or ""

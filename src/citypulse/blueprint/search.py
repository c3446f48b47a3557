"""Full-text search over initiatives in English and Chinese, including partial Chinese words.

Chinese has no spaces, so word tokenising would miss '出行' inside '香港出行易'. Instead every
field is normalised (NFKC + casefold) and indexed by character bigrams (and single characters);
a query term's candidates are the intersection of its bigram postings, confirmed by a substring
test. That finds partial words in any script, never misses a true substring, and stays well
under a millisecond for the Blueprint's few hundred entries (see benchmarks/bench_portal.py).
All terms must match (AND); the score weights titles over summaries over milestones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Field weights: a title hit should outrank a passing mention in a milestone.
WEIGHTS: Mapping[str, float] = {
    "id": 8.0,
    "title_en": 10.0,
    "title_zh": 10.0,
    "summary": 3.0,
    "summary_zh": 3.0,
    "owner": 3.0,
    "area": 2.0,
    "milestones": 1.0,
    "figures": 1.0,
    "notes": 1.0,
}
_SPLIT = re.compile(r"[\s,;，；、。．・:：!?！？\"“”'‘’()（）\[\]【】「」『』]+")
_WORD_CHAR = re.compile(r"\w")


def normalise(text: str) -> str:
    """Full-width to half-width, compatibility forms folded, case folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or ch >= "\U00020000"


def query_terms(query: str) -> list[str]:
    """Split a query into normalised terms; English plurals are reduced to a stem that is a
    substring of both forms ('lampposts' -> 'lamppost', 'facilities' -> 'facilit')."""
    terms: list[str] = []
    for raw in _SPLIT.split(normalise(query)):
        term = raw.strip("-_.")
        if not term:
            continue
        if term.isascii() and len(term) > 4 and term.endswith("ies"):
            term = term[:-3]
        elif term.isascii() and len(term) > 3 and term.endswith("s") and not term.endswith("ss"):
            term = term[:-1]
        if term not in terms:
            terms.append(term)
    return terms


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float


class SearchIndex:
    """An immutable bigram index over documents given as ``(id, {field: text})``."""

    __slots__ = ("_fields", "_grams", "_ids", "_order", "_text")

    def __init__(self, docs: Iterable[tuple[str, Mapping[str, str | Sequence[str] | None]]]):
        self._ids: list[str] = []
        self._fields: list[dict[str, str]] = []
        self._text: list[str] = []
        self._grams: dict[str, set[int]] = {}
        for doc_no, (doc_id, fields) in enumerate(docs):
            norm: dict[str, str] = {}
            for name, value in fields.items():
                if value is None:
                    continue
                text = value if isinstance(value, str) else "\n".join(value)
                if text:
                    norm[name] = normalise(text)
            full = "\n".join(norm.values())
            self._ids.append(doc_id)
            self._fields.append(norm)
            self._text.append(full)
            for gram in self._doc_grams(full):
                self._grams.setdefault(gram, set()).add(doc_no)
        self._order = {doc_id: n for n, doc_id in enumerate(self._ids)}

    @staticmethod
    def _doc_grams(text: str) -> set[str]:
        grams = set(text)
        grams.update(text[i : i + 2] for i in range(len(text) - 1))
        return grams

    def __len__(self) -> int:
        return len(self._ids)

    def _candidates(self, term: str) -> set[int]:
        grams = [term] if len(term) == 1 else [term[i : i + 2] for i in range(len(term) - 1)]
        postings = sorted((self._grams.get(g, set()) for g in grams), key=len)
        if not postings or not postings[0]:
            return set()
        found = set(postings[0])
        for p in postings[1:]:
            found &= p
            if not found:
                break
        return {n for n in found if term in self._text[n]}

    def search(self, query: str) -> list[Hit]:
        """Documents containing every term, best first (ties keep document order)."""
        terms = query_terms(query)
        if not terms:
            return []
        matched: set[int] | None = None
        for term in sorted(terms, key=len, reverse=True):
            docs = self._candidates(term)
            matched = docs if matched is None else matched & docs
            if not matched:
                return []
        assert matched is not None
        hits = [Hit(self._ids[n], self._score(n, terms)) for n in matched]
        hits.sort(key=lambda h: (-h.score, self._order[h.id]))
        return hits

    def _score(self, doc_no: int, terms: list[str]) -> float:
        score = 0.0
        for name, text in self._fields[doc_no].items():
            weight = WEIGHTS.get(name, 1.0)
            for term in terms:
                pos = text.find(term)
                if pos < 0:
                    continue
                # A hit at the start of a word (or any CJK hit) counts double.
                boundary = pos == 0 or not _WORD_CHAR.match(text[pos - 1]) or _is_cjk(term[0])
                score += weight * (2.0 if boundary else 1.0)
                if text == term:
                    score += weight
        return score

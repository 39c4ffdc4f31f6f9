"""Word boundaries in OCR output.

rapidocr's recogniser (PP-OCRv4, trained mostly on Chinese) drops most spaces in Latin text:
"PAYMENTSLANDSCAPE", "oftrainsontime". BM25 and the embedding tokenizer cannot match any word of such
a run, so every run of letters is segmented again by a dynamic program that adds up

- word costs from a frequency list: -log(relative frequency) of the words of symspellpy's English
  list (82,765 words from Google Books n-grams; symspellpy is maintained and ships it), a length
  penalty for words that are not on it;
- at each boundary, evidence from the recogniser's own geometry: the distance between the centres of
  neighbouring characters relative to the line's usual pitch (a dropped space leaves a wider step),
  and a change from lower to upper case ("AboutPew").

A short run written as a name or an acronym ("Kailali", "HEGO") pays extra for every boundary, so the
list alone does not cut a name into rare words ("Kail ali"); the geometry still can. A run after "#" or
"@" (a hashtag, a handle) is one term, as users type it.

symspellpy's own `word_segmentation` cannot take the geometry and corrects spelling as it goes, which
turns names into words; only its list is used. Digits, units, percentages and punctuation are never
split or joined: only runs of letters are segmented, so "27%", "3.5GHz", "COVID-19" stay as they were.

Measured by benchmarks/ocr_words.py (born-digital pages rendered and OCR'd, tokens compared with the
text layer); the weights below were tuned on a disjoint set of pages.
"""

from __future__ import annotations

import math
import re
import statistics
import threading
from collections.abc import Sequence

# Cost model (nats). An unknown word costs as much as a word seen once in the list plus UNKNOWN plus
# UNKNOWN_PER_LETTER per letter; each boundary costs BOUNDARY minus GAP_WEIGHT times the relative
# widening of the character pitch there, minus CASE_CHANGE at a lower→upper change.
UNKNOWN = 0.0
UNKNOWN_PER_LETTER = 1.5
BOUNDARY = 8.0
BOUNDARY_BLIND = 2.0  # ... without geometry (vertical lines, or no character boxes): the list decides
GAP_WEIGHT = 12.0
CASE_CHANGE = 8.0
# A short run written as a name or an acronym ("Kailali", "Maddie", "HEGO") is split only where the
# geometry shows a dropped space: the list splits unknown names into rare words ("Kail ali", "Mad die").
NAME_LETTERS = 12
NAME_BOUNDARY = 20.0  # added to each boundary inside such a run
MAX_WORD = 24  # longer pieces are never looked up (the list's longest common words are shorter)
_LETTERS = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]{2,}")  # Latin letters: the list is English

_costs: dict[str, float] | None = None
_unknown_base = 0.0
_lock = threading.Lock()


def _load() -> dict[str, float]:
    """Word -> -log(relative frequency), loaded once per process (about 80 ms)."""
    global _costs, _unknown_base
    with _lock:
        if _costs is None:
            from importlib.resources import files

            text = (files("symspellpy") / "frequency_dictionary_en_82_765.txt").read_text(encoding="utf-8")
            counts: dict[str, int] = {}
            for line in text.splitlines():
                word, _, count = line.partition(" ")
                if word.isalpha() and count.isdigit():
                    counts[word] = int(count)
            log_total = math.log(sum(counts.values()))
            _costs = {w: log_total - math.log(c) for w, c in counts.items()}
            _unknown_base = log_total
        return _costs


def restore_spaces(text: str, centres: Sequence[float] | None = None, height: float = 0.0) -> str:
    """`text` with the spaces the recogniser dropped put back.

    `centres` are the x positions of the characters of `text` (one per character, left to right) and
    `height` the line's height in the same units; without them only the word list decides.
    """
    gaps = _gaps(text, centres, height)
    out: list[str] = []
    last = 0
    for match in _LETTERS.finditer(text):
        out.append(text[last : match.start()])
        run_gaps = gaps[match.start() : match.end()] if gaps is not None else None
        tag = match.start() > 0 and text[match.start() - 1] in "#@"  # a hashtag or handle is one term
        out.append(match.group() if tag else " ".join(segment(match.group(), run_gaps)))
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def segment(run: str, gaps: Sequence[float] | None = None) -> list[str]:
    """The cheapest split of a run of letters into words; `gaps[i]` is the widening before letter i."""
    costs = _load()
    lower = run.lower()
    n = len(lower)
    name = n <= NAME_LETTERS and (run.isupper() or run.istitle())
    best = [0.0] + [math.inf] * n
    start = [0] * (n + 1)
    for end in range(1, n + 1):
        for begin in range(max(0, end - MAX_WORD), end):
            cost = best[begin] + _word_cost(costs, lower[begin:end])
            if begin:
                cost += _boundary_cost(run, begin, gaps) + (NAME_BOUNDARY if name else 0.0)
            if cost < best[end]:
                best[end], start[end] = cost, begin
    words: list[str] = []
    end = n
    while end > 0:
        words.append(run[start[end] : end])
        end = start[end]
    return words[::-1]


def _word_cost(costs: dict[str, float], word: str) -> float:
    known = costs.get(word)
    return known if known is not None else _unknown_base + UNKNOWN + UNKNOWN_PER_LETTER * len(word)


def _boundary_cost(run: str, index: int, gaps: Sequence[float] | None) -> float:
    cost = BOUNDARY_BLIND if gaps is None or index >= len(gaps) else BOUNDARY - GAP_WEIGHT * gaps[index]
    if run[index - 1].islower() and run[index].isupper():
        cost -= CASE_CHANGE
    return cost


def _gaps(text: str, centres: Sequence[float] | None, height: float) -> list[float] | None:
    """Per character: how much wider the step from the previous character is than the line's usual
    step between letters (0.0 = usual, 0.5 = half as wide again); None without geometry."""
    if centres is None or len(centres) != len(text) or height <= 0:
        return None
    steps = [0.0] + [(centres[i] - centres[i - 1]) / height for i in range(1, len(text))]
    between_letters = [steps[i] for i in range(1, len(text)) if text[i].isalpha() and text[i - 1].isalpha()]
    usual = statistics.median(between_letters) if between_letters else 0.0
    if usual <= 0:
        return None
    return [step / usual - 1.0 for step in steps]

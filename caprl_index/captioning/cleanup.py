"""Strip the self-praise and meta-commentary CapRL-3B sometimes appends to a caption.

CapRL is rewarded when a text-only model can answer questions from its caption, and it learnt to close
with remarks about the caption itself ("This description captures …", "I hope this helps!"). They carry
no information about the image and pollute retrieval, so trailing sentences of that kind are removed.
Summaries of the *image* ("Overall, the chart shows …") are content and are kept.
"""

from __future__ import annotations

import re

_LEAD_IN = r"(?:(?:overall|in summary|in conclusion|to summarize|to sum up|in short|finally)\s*,?\s*)?"
_SELF = r"(?:this|the above|the provided|the preceding|my)"
_ADJ = r"(?:(?:detailed|comprehensive|structured|thorough|above|extensive|complete)\s+)*"
_NOUN = r"(?:description|breakdown|analysis|explanation|summary|overview|account)"
_META = re.compile(
    rf"^\W*{_LEAD_IN}(?:"
    rf"{_SELF}\s+{_ADJ}{_NOUN}\b"  # "This detailed description captures ..."
    r"|i hope\b|hope this helps\b"
    r"|let me know\b|feel free\b|if you (?:have|need) any\b|is there anything else\b"
    r"|this (?:should|will) (?:give|provide|help|allow|enable)\b"
    r"|by (?:following|reading) this\b|with this (?:description|information)\b"
    r")",
    re.IGNORECASE,
)
# Sentence ends: ". " "! " "? " followed by a capital, an opening quote or end of text.
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[*A-Z])")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")


def strip_self_praise(text: str) -> str:
    """``text`` without trailing meta-commentary; never returns less than the first paragraph."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    while len(paragraphs) > 1:
        last = _strip_sentences(paragraphs[-1])
        if last and not _RULE.match(last):
            paragraphs[-1] = last
            break
        paragraphs.pop()
    if len(paragraphs) == 1:
        paragraphs[0] = _strip_sentences(paragraphs[0]) or paragraphs[0]
    return "\n\n".join(p.rstrip() for p in paragraphs).strip()


def _strip_sentences(paragraph: str) -> str:
    """Drop meta sentences from the end of one paragraph (all of it when all are meta)."""
    lines = paragraph.rstrip().split("\n")
    head, last_line = lines[:-1], lines[-1]
    sentences = _SENTENCE.split(last_line.strip())
    while sentences and _is_meta(sentences[-1]):
        sentences.pop()
    if sentences:
        return "\n".join([*head, _indent(last_line) + " ".join(sentences)]).rstrip()
    return _strip_sentences("\n".join(head)) if head else ""


def _is_meta(sentence: str) -> bool:
    return bool(_META.match(sentence.strip().lstrip("#*>- ").strip()))


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]

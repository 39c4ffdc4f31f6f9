"""Model families: how many visual tokens an image costs, and how to name the family from what a server says.

Qwen2.5-VL (CapRL-3B) cuts an image into 14 px patches and merges 2x2 of them into one token, so one token
covers 28x28 px; Qwen3-VL (CapRL 2.0: CapRL-Qwen3VL-2B/4B) uses 16 px patches, 32x32 px per token. Both
processors resize with ``smart_resize`` (transformers ``models/qwen2_vl/image_processing_qwen2_vl.py``, copied
by vLLM's ``qwen3_vl.py`` and SGLang's ``processors/qwen_vl.py``): each side rounded to a multiple of the token
size, then scaled down (floor) above ``max_pixels`` or up (ceil) below ``min_pixels``. The same budget in
*pixels* is therefore a different number of *tokens* per family, which is why the budget is set in tokens.

``generic`` is any other vision model (InternVL, LLaVA, ...): its arithmetic is not modelled, so its budget
is counted at 28x28 px per token (the densest of the families above) and images are scaled by area.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from caprl_index.config import Settings

# Per the text part of a caption request: the prompt, the chat template and Qwen's default system turn
# (about 30 tokens measured on the fake server's arithmetic; rounded up so a request never touches the edge).
PROMPT_OVERHEAD_TOKENS = 64


@dataclass(frozen=True)
class Family:
    """One family's token arithmetic, as its Hugging Face processor applies it by default."""

    name: str
    token_px: int  # side of the square one visual token covers (patch size x spatial merge)
    min_pixels: int  # processor default: smaller images are scaled *up* to this many pixels
    max_pixels: int  # processor default: larger images are scaled down to this many pixels
    snaps: bool = True  # sides are rounded to multiples of token_px (False: generic, area only)

    @property
    def pixels_per_token(self) -> int:
        return self.token_px * self.token_px

    def pixel_budget(self, tokens: int) -> int:
        """The most pixels an image of at most ``tokens`` visual tokens can have."""
        return tokens * self.pixels_per_token


QWEN25_VL = Family(
    "qwen2.5-vl",
    token_px=28,
    # CapRL-3B's preprocessor_config.json: min_pixels 3136, max_pixels 12845056 (16,384 tokens).
    min_pixels=56 * 56,
    max_pixels=12_845_056,
)
QWEN3_VL = Family(
    "qwen3-vl",
    token_px=32,
    # Qwen3-VL's preprocessor_config.json: size {"shortest_edge": 65536, "longest_edge": 16777216}; despite
    # their names both are pixel counts (vLLM qwen3_vl.py passes them to smart_resize as min/max_pixels).
    min_pixels=65_536,
    max_pixels=16_777_216,
)
GENERIC = Family("generic", token_px=28, min_pixels=1, max_pixels=2**40, snaps=False)
FAMILIES: dict[str, Family] = {f.name: f for f in (QWEN25_VL, QWEN3_VL, GENERIC)}
DEFAULT_FAMILY = QWEN25_VL  # CapRL-3B, the model the project was built around

# Checked in order against model ids, paths and architecture names: Qwen3-VL first ("qwen3vl" is not
# "qwen2.5-vl", but CapRL-Qwen3VL must not fall through to the CapRL-3B pattern).
_PATTERNS: tuple[tuple[re.Pattern[str], Family], ...] = (
    (re.compile(r"qwen3[-_. ]?vl", re.IGNORECASE), QWEN3_VL),
    (re.compile(r"qwen2(?:[-_. ]?5)?[-_. ]?vl|caprl[-_]?(?:eval[-_]?)?3b", re.IGNORECASE), QWEN25_VL),
    (re.compile(r"internvl|llava|gemma|minicpm|pixtral|idefics|phi[-_]?[34]|molmo|mllama", re.IGNORECASE), GENERIC),
)


def family_named(name: str) -> Family:
    """The family called ``name`` (``qwen2.5-vl``, ``qwen3-vl``, ``generic``)."""
    return FAMILIES[name]


def settings_family(settings: Settings) -> Family:
    """The family the settings imply with no server asked: CAPRL_MODEL_FAMILY, else the served name's."""
    if settings.model_family != "auto":
        return FAMILIES[settings.model_family]
    return detect_family(settings.vllm_model) or DEFAULT_FAMILY


def detect_family(*names: str | None) -> Family | None:
    """The family these ids/paths/architectures name, or None when none of them says."""
    for pattern, family in _PATTERNS:
        if any(name and pattern.search(name) for name in names):
            return family
    return None


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) as Qwen's processors resize them: multiples of ``factor`` within the pixel range."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar

"""The image budget: how many visual tokens a crop may cost, what it costs on each server, and its new size.

The budget is set in visual tokens (``CAPRL_IMAGE_TOKENS``, default 1,280) and converted per family. A crop
is sent byte for byte when it holds no more pixels than the budget allows and its cost, counted the way the
server will count it, fits the server's context; otherwise it is resized to sides that are multiples of the
family's token size, so the server's own resize keeps it as it is and the model sees the image that was
hashed. Servers resize differently (:class:`Pass`): SGLang rounds every Qwen image to multiples of 28 px
before the Hugging Face processor runs, llama.cpp and Ollama clamp the token count to their own range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from caprl_index.captioning.families import PROMPT_OVERHEAD_TOKENS, Family, smart_resize

MIN_USEFUL_TOKENS = 64  # below this a caption says little; the context clamp warns instead of going lower


@dataclass(frozen=True)
class Pass:
    """One resize a server applies before counting tokens: multiples of ``factor``, within the pixel range."""

    factor: int
    min_pixels: int
    max_pixels: int

    def apply(self, width: int, height: int) -> tuple[int, int]:
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return w, h


@dataclass(frozen=True)
class ImageBudget:
    """A family's budget against the servers' resizes (one tuple of passes per server kind in use)."""

    family: Family
    tokens: int  # the most visual tokens a resized image may cost
    servers: tuple[tuple[Pass, ...], ...] = ()
    configured_tokens: int = 0  # before the context clamp (0: same as tokens)
    room: int | None = None  # visual tokens the smallest context holds (None: no server said)

    @property
    def max_pixels(self) -> int:
        return self.family.pixel_budget(self.tokens)

    @property
    def clamped(self) -> bool:
        return bool(self.configured_tokens) and self.tokens < self.configured_tokens

    def cost(self, width: int, height: int) -> int:
        """Visual tokens the image costs on the most expensive server (an estimate for ``generic``)."""
        if not self.family.snaps:
            return max(1, math.ceil(width * height / self.family.pixels_per_token))
        return max(self._cost_on(width, height, passes) for passes in self.servers or ((),))

    def _cost_on(self, width: int, height: int, passes: tuple[Pass, ...]) -> int:
        family = self.family
        for step in passes or (Pass(family.token_px, family.min_pixels, family.max_pixels),):
            width, height = step.apply(width, height)
        return (width // family.token_px) * (height // family.token_px)

    def fits(self, width: int, height: int) -> bool:
        """True when the image can be sent as it is."""
        if width * height > self.max_pixels:
            return False
        # Rounding may cost a few tokens over the budget (a 1001x1001 crop is 36x36 tokens on Qwen2.5-VL);
        # that is allowed, the context is what must never overflow.
        return self.cost(width, height) <= self.ceiling

    @property
    def ceiling(self) -> int:
        """Tokens an unchanged image may cost: the budget plus rounding, never more than the context holds."""
        slack = self.tokens // 32 if self.family.snaps else 0
        return min(self.tokens + slack, self.room if self.room is not None else self.tokens + slack)

    def target(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) to resize to: at most ``tokens`` on every server, aspect kept."""
        if not self.family.snaps:
            scale = min(1.0, math.sqrt(self.max_pixels / (width * height)))
            return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
        factor, tokens = self.family.token_px, self.tokens
        while True:
            # min_pixels of one token: the client never scales up, the server does that if it wants to.
            size = Pass(factor, factor * factor, tokens * factor * factor).apply(width, height)
            if self.cost(*size) <= self.tokens or tokens <= 1:
                return size
            tokens -= max(1, tokens // 50)  # a later pass rounded up: aim a little lower


def context_tokens(context: int | None, max_tokens: int) -> int | None:
    """Visual tokens that fit a server's context next to the prompt and a full-length caption."""
    if context is None:
        return None
    return context - max_tokens - PROMPT_OVERHEAD_TOKENS


def make_budget(
    family: Family, tokens: int, servers: list[tuple[Pass, ...]], contexts: list[int | None], max_tokens: int
) -> ImageBudget:
    """The budget for these servers: ``tokens``, lowered to what the smallest context holds."""
    rooms = [r for r in (context_tokens(c, max_tokens) for c in contexts) if r is not None]
    room = min(rooms) if rooms else None
    effective = max(4, min(tokens, room if room is not None else tokens))
    return ImageBudget(family, effective, tuple(dict.fromkeys(servers)), configured_tokens=tokens, room=room)

"""The captioning setup of a run: the model family, the image budget, each URL's kind and capacity.

Resolved once from the probes, then used by the captioner (fit and request), ``doctor`` and ``caption``
(which report it), and ``open_captioner`` (which warns about what needs a fix).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from caprl_index.captioning import dialects
from caprl_index.captioning.budget import MIN_USEFUL_TOKENS, ImageBudget, make_budget
from caprl_index.captioning.discovery import ServerProbe
from caprl_index.captioning.families import FAMILIES, PROMPT_OVERHEAD_TOKENS, Family, settings_family
from caprl_index.config import Settings

TEST_IMAGE_SIZE = (1654, 2339)  # an A4 page rendered at 200 dpi: what doctor says one page costs


@dataclass(frozen=True)
class CaptionSetup:
    """How a run captions: one family and budget for all URLs, a kind and capacity per URL."""

    family: Family
    family_source: str
    budget: ImageBudget
    probes: list[ServerProbe]  # the serving URLs
    capacities: dict[str, int | None]
    warnings: list[str] = field(default_factory=list)


def resolve_setup(settings: Settings, probes: list[ServerProbe]) -> CaptionSetup:
    """The setup for the URLs that serve the model (``probes`` may include others; they are ignored)."""
    serving = [p for p in probes if p.ok]
    family, source, warnings = _family(settings, serving)
    budget = make_budget(
        family,
        settings.image_token_budget,
        [dialects.passes(p.kind, family) for p in serving],
        [p.context for p in serving],
        settings.max_tokens,
    )
    warnings += _budget_warnings(settings, budget, serving)
    warnings += [f"{p.url}: {note}" for p in serving for note in p.notes]
    capacities = {p.url: _capacity(settings, p) for p in serving}
    return CaptionSetup(family, source, budget, serving, capacities, warnings)


def _capacity(settings: Settings, probe: ServerProbe) -> int | None:
    return settings.server_concurrency or probe.slots or dialects.default_parallel(probe.kind)


def _family(settings: Settings, serving: list[ServerProbe]) -> tuple[Family, str, list[str]]:
    implied = settings_family(settings)
    if settings.model_family != "auto":
        return implied, "CAPRL_MODEL_FAMILY", []
    named = {p.family for p in serving if p.family}
    if not named:
        how = f"from the model name {settings.vllm_model!r}" if implied.name != "qwen2.5-vl" else "assumed"
        return implied, f"{how} (no server named its model family; set CAPRL_MODEL_FAMILY to be sure)", []
    first = next(p for p in serving if p.family)
    family = FAMILIES[first.family or implied.name]
    warnings = []
    if len(named) > 1:
        warnings.append(
            f"the URLs serve different model families ({', '.join(sorted(named))}); captioning all of them as "
            f"{family.name}. Serve one model everywhere, or set CAPRL_MODEL_FAMILY."
        )
    if family is not implied:
        warnings.append(
            f"{first.url} serves a {family.name} model ({first.family_source}), but the settings alone imply "
            f"{implied.name}: set CAPRL_MODEL_FAMILY={family.name} so that `status` and `ingest --recaption` "
            f"compare captions with the right prompt version and crops are rendered for {family.name} "
            f"(now {settings.max_pixels:,} px, {settings.max_pixels // family.pixels_per_token:,} tokens)."
        )
    return family, f"{first.family_source} at {first.url}", warnings


def _budget_warnings(settings: Settings, budget: ImageBudget, serving: list[ServerProbe]) -> list[str]:
    if not budget.clamped:
        return []
    smallest = min((p for p in serving if p.context is not None), key=lambda p: p.context or 0)
    needed = budget.configured_tokens + settings.max_tokens + PROMPT_OVERHEAD_TOKENS
    flag = {"llama.cpp": "-c (per slot: -c / --parallel)", "ollama": "num_ctx (Modelfile PARAMETER)"}.get(
        smallest.kind, "--max-model-len"
    )
    severity = "too small for a useful caption" if budget.tokens < MIN_USEFUL_TOKENS else "smaller than the budget"
    return [
        f"{smallest.url} holds {smallest.context:,} tokens per request, {severity}: images get {budget.tokens:,} "
        f"visual tokens instead of {budget.configured_tokens:,} (room is kept for the prompt and "
        f"CAPRL_MAX_TOKENS={settings.max_tokens}). Raise its {flag} to {needed:,}, or lower CAPRL_MAX_TOKENS."
    ]


def describe_budget(setup: CaptionSetup) -> str:
    """One line: the family, the budget, and what a page costs."""
    budget, family = setup.budget, setup.family
    width, height = budget.target(*TEST_IMAGE_SIZE) if not budget.fits(*TEST_IMAGE_SIZE) else TEST_IMAGE_SIZE
    grid = f"{family.token_px}x{family.token_px} px per token" if family.snaps else "≈28x28 px per token (estimate)"
    return (
        f"{family.name} ({setup.family_source}); budget {budget.tokens:,} visual tokens = up to "
        f"{budget.max_pixels:,} px, {grid}; a {TEST_IMAGE_SIZE[0]}x{TEST_IMAGE_SIZE[1]} page is sent as "
        f"{width}x{height} = {budget.cost(width, height):,} tokens"
    )


def describe_server(setup: CaptionSetup, probe: ServerProbe) -> str:
    """One line per URL: its kind, context and how many requests it takes at once."""
    capacity = setup.capacities.get(probe.url)
    parts = [
        f"{probe.kind} ({probe.kind_source})",
        f"context {probe.context:,} tokens" if probe.context else "context not reported",
        f"{capacity} request(s) at once" if capacity else "batches requests (bounded by CAPRL_MAX_CONCURRENCY)",
    ]
    return ", ".join(parts)

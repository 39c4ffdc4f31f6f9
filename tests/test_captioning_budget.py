"""Model families and the image budget: token arithmetic per family and server, the context clamp, settings."""

from __future__ import annotations

import random

import pytest

from caprl_index.captioning import dialects
from caprl_index.captioning.budget import make_budget
from caprl_index.captioning.families import FAMILIES, QWEN3_VL, QWEN25_VL, detect_family, smart_resize
from caprl_index.captioning.prompt import PROMPT_VERSION, prompt_version
from caprl_index.config import Settings
from caprl_index.testing._fake_model import visual_tokens


def _budget(family: str, tokens: int = 1280, kinds: tuple[str, ...] = ("vllm",), contexts=(None,), max_tokens=2048):
    fam = FAMILIES[family]
    return make_budget(fam, tokens, [dialects.passes(k, fam) for k in kinds], list(contexts), max_tokens)


def test_smart_resize_matches_the_processors_arithmetic() -> None:
    # The 4000x4000 scan of the issue: Qwen2.5-VL's processor (12.8 M px) makes it 3584x3584 = 16,384 tokens.
    assert smart_resize(4000, 4000, 28, 3136, 12_845_056) == (3584, 3584)
    # At 1,280 tokens' worth of pixels: floor to whole tokens, 35x35 = 1,225.
    assert smart_resize(4000, 4000, 28, 784, 1280 * 784) == (980, 980)
    # A 1001x1001 crop (1,002,001 px, inside 1,003,520) rounds *up* to 36x36 = 1,296 tokens.
    assert smart_resize(1001, 1001, 28, 3136, 12_845_056) == (1008, 1008)
    # Qwen3-VL scales small images up to 65,536 px: a 64x48 icon costs 70 tokens, not 4.
    assert smart_resize(48, 64, 32, 65_536, 16_777_216) == (224, 320)


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (("caprl", "internlm/CapRL-3B"), "qwen2.5-vl"),
        (("caprl", "/models/CapRL-Qwen3VL-4B"), "qwen3-vl"),
        (("CapRL-Qwen3VL-2B-Q4_K_M.gguf",), "qwen3-vl"),
        (("qwen3vl",), "qwen3-vl"),  # Ollama's architecture name
        (("qwen25vl",), "qwen2.5-vl"),
        (("Qwen/Qwen2.5-VL-7B-Instruct",), "qwen2.5-vl"),
        (("mradermacher/CapRL-3B-GGUF",), "qwen2.5-vl"),
        (("internlm/CapRL-InternVL3.5-8B",), "generic"),
        (("caprl", "my-model"), None),
    ],
)
def test_family_is_named_by_ids_paths_and_architectures(names: tuple[str, ...], family: str | None) -> None:
    found = detect_family(*names)
    assert (found.name if found else None) == family


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
@pytest.mark.parametrize("kind", ["vllm", "sglang", "llama.cpp", "ollama", "generic"])
def test_resized_images_never_cost_more_than_the_budget_on_the_server(family: str, kind: str) -> None:
    """The client's target against the fake server's own (independently written) token count."""
    budget = _budget(family, kinds=(kind,))
    rng = random.Random(f"{family}-{kind}")
    for _ in range(300):
        width, height = rng.randint(30, 6000), rng.randint(30, 6000)
        if max(width, height) / min(width, height) > 150:
            continue
        target = budget.target(width, height)
        served = visual_tokens(*target, kind, family)
        assert served <= 1280, (width, height, target, served)
        assert served == budget.cost(*target)  # the client predicts exactly what the server counts
        side = {"qwen2.5-vl": 28, "qwen3-vl": 32}[family]
        assert target[0] % side == 0 and target[1] % side == 0


def test_same_budget_is_a_different_pixel_count_per_family() -> None:
    qwen25, qwen3 = _budget("qwen2.5-vl"), _budget("qwen3-vl")
    assert (qwen25.max_pixels, qwen3.max_pixels) == (1_003_520, 1_310_720)
    # 1,003,520 px (the old client-side budget) is 1,280 Qwen2.5-VL tokens but only 980 Qwen3-VL tokens.
    assert qwen25.cost(1120, 896) == 1280 and qwen3.cost(1120, 896) == 980
    generic = _budget("generic")
    assert generic.cost(1000, 1000) == 1276 and generic.target(4000, 3000) == (1156, 867)


def test_unchanged_crops_may_round_up_a_little_but_never_past_the_context() -> None:
    budget = _budget("qwen2.5-vl")
    assert budget.fits(1001, 1001)  # 1,296 tokens after rounding: sent as it is, no re-encode
    assert not budget.fits(1200, 1000)  # more pixels than the budget: resized
    tight = _budget("qwen2.5-vl", contexts=(2048 + 64 + 1290,))
    assert tight.tokens == 1280 and tight.room == 1290
    assert not tight.fits(1001, 1001)  # 1,296 would not fit the context: resized after all


@pytest.mark.parametrize(
    ("kind", "size", "tokens"),
    [
        ("vllm", (64, 48), 4),
        ("sglang", (100, 133), 72),  # 28 px pre-pass first, then the Qwen3-VL processor (vLLM counts 70)
        ("llama.cpp", (64, 48), 12),  # scaled up to clip.cpp's lower bound of 8 tokens, rounded up to 3x4
        ("ollama", (64, 48), 1036),  # Ollama starts llama-server with --image-min-tokens 1024: 28x37
    ],
)
def test_each_server_counts_its_own_way(kind: str, size: tuple[int, int], tokens: int) -> None:
    family = "qwen3-vl" if kind == "sglang" else "qwen2.5-vl"
    assert _budget(family, kinds=(kind,)).cost(*size) == tokens == visual_tokens(*size, kind, family)


def test_context_clamps_the_budget() -> None:
    budget = _budget("qwen2.5-vl", contexts=(4096, 3000), max_tokens=2048)
    assert budget.clamped and budget.tokens == 3000 - 2048 - 64 and budget.configured_tokens == 1280
    assert visual_tokens(*budget.target(4000, 4000), "vllm", "qwen2.5-vl") <= budget.tokens
    assert not _budget("qwen2.5-vl", contexts=(8192,)).clamped


def test_settings_budget_defaults_and_the_old_max_pixels() -> None:
    assert (Settings().image_tokens, Settings().max_pixels) == (1280, 1_003_520)
    # Crops are rendered for the configured family: 1,280 Qwen3-VL tokens need 1,310,720 px.
    assert Settings(model_family="qwen3-vl").max_pixels == 1_310_720
    assert Settings(image_tokens=640).max_pixels == 640 * 784
    old = Settings(max_pixels=500_000)
    assert (old.image_tokens, old.max_pixels, old.legacy_max_pixels) == (637, 500_000, True)
    both = Settings(max_pixels=500_000, image_tokens=900)
    assert (both.image_tokens, both.max_pixels, both.legacy_max_pixels) == (900, 500_000, False)


def test_prompt_version_includes_family_and_budget() -> None:
    base = Settings()
    assert prompt_version(base) == prompt_version(base, QWEN25_VL) == PROMPT_VERSION  # old captions stay valid
    qwen3 = prompt_version(base, QWEN3_VL)
    assert qwen3 != PROMPT_VERSION
    assert prompt_version(Settings(image_tokens=1024), QWEN3_VL) != qwen3
    assert prompt_version(Settings(model_family="qwen3-vl")) == qwen3
    assert prompt_version(Settings(vllm_model="CapRL-Qwen3VL-4B")) == qwen3  # the served name says so


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "size", "patch"),
    [
        ("qwen2.5-vl", {"shortest_edge": 3136, "longest_edge": 12_845_056}, 14),
        ("qwen3-vl", {"shortest_edge": 65_536, "longest_edge": 16_777_216}, 16),
    ],
)
def test_token_counts_agree_with_the_hugging_face_processor(family: str, size: dict[str, int], patch: int) -> None:
    """The client's count against transformers' own Qwen2-VL image processor (what vLLM runs), configured as
    CapRL-3B's and Qwen3-VL's preprocessor_config.json are. No weights are needed for this."""
    pil = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    from PIL import Image

    processor = pil.Qwen2VLImageProcessorPil(size=size, patch_size=patch, merge_size=2)
    budget = _budget(family)

    def hf_tokens(width: int, height: int) -> int:
        _, rows, cols = processor(images=[Image.new("RGB", (width, height))], return_tensors="np")["image_grid_thw"][0]
        return int(rows * cols) // 4

    # The processor itself, on a few sizes (small ones are scaled *up* to size.shortest_edge)...
    for width, height in [
        (64, 48),
        (1001, 1001),
        (333, 777),
        *(budget.target(w, h) for w, h in [(4000, 4000), (2800, 2100)]),
    ]:
        assert hf_tokens(width, height) == budget.cost(width, height), (width, height)
    # ...and its smart_resize (what the processor calls) on many more.
    rng = random.Random(family)
    side = patch * 2
    for _ in range(2000):
        width, height = rng.randint(20, 8000), rng.randint(20, 8000)
        if max(width, height) / min(width, height) > 150:
            continue
        rows, cols = pil.smart_resize(
            height, width, factor=side, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"]
        )
        assert (rows // side) * (cols // side) == budget.cost(width, height), (width, height)

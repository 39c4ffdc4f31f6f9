"""The server's own count of what an image costs: one request for the test page with ``max_tokens=1``.

Cheap on every server (the image is encoded, one token generated), and the only way to check the
family's token arithmetic against the real processor: ``usage.prompt_tokens`` is what the server counted.
"""

from __future__ import annotations

import io

from caprl_index.captioning import images
from caprl_index.captioning.discovery import ServerProbe
from caprl_index.captioning.prompt import chat_request
from caprl_index.captioning.servers import make_client
from caprl_index.captioning.setup import TEST_IMAGE_SIZE, CaptionSetup
from caprl_index.config import Settings

MEASURE_TIMEOUT_S = 120.0  # a CPU-only llama-server encodes an image in tens of seconds


def test_page() -> bytes:
    """A white A4 page at 200 dpi with dark text-like bars: the size of a rendered report page."""
    from PIL import Image, ImageDraw

    width, height = TEST_IMAGE_SIZE
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    for row in range(120, height - 120, 48):
        draw.rectangle((120, row, width - 120 - (row * 7) % 400, row + 18), fill=(40, 40, 40))
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


async def measure_test_image(settings: Settings, setup: CaptionSetup) -> tuple[ServerProbe, int, int]:
    """(server asked, prompt tokens it counted, visual tokens predicted) for the test page, as fitted."""
    import httpx2

    probe = setup.probes[0]
    page = test_page()
    width, height = TEST_IMAGE_SIZE
    size = (width, height) if setup.budget.fits(width, height) else setup.budget.target(width, height)
    data, mime = images.resize(page, size)
    one_token = settings.model_copy(update={"max_tokens": 1})
    body = chat_request(one_token, data, mime, probe.kind)
    async with make_client(probe.url, settings, MEASURE_TIMEOUT_S) as client:
        response = await client.post("/chat/completions", cast_to=httpx2.Response, body=body)
        usage = response.json().get("usage") or {}
    return probe, int(usage.get("prompt_tokens") or 0), setup.budget.cost(*size)

"""Chunking: page text split by SentenceSplitter, figures as their own chunks, sized by the real tokenizer."""

from __future__ import annotations

import pytest

from caprl_index.chunking import Chunker, figure_text
from caprl_index.models import Caption, Figure, Page, ParsedPage, SourceFile

SRC = SourceFile(path="/data/annual-report.pdf", sha256="ab" * 32, size=10)


def make_figure(index: int = 0, **text: str) -> Figure:
    return Figure(
        kind="figure", figure_type="chart", bbox=(50, 100, 400, 380), image=b"png", mime="image/png",
        image_sha256=f"{index:064x}", region_index=index, **text,
    )  # fmt: skip


def parsed(text: str, *figures: Figure, number: int = 3) -> ParsedPage:
    return ParsedPage(Page(number=number, width=595, height=842, text=text), tuple(figures))


@pytest.fixture(scope="module")
def chunker(embedder) -> Chunker:
    return Chunker(chunk_size=200, chunk_overlap=30, window=embedder.max_tokens, tokenizer=embedder.tokenizer())


def test_figure_text_is_never_empty() -> None:
    bare = figure_text(make_figure(), Caption(text="", source="none"), file_name="r.pdf", page_number=4)
    assert bare.strip() and "page 4" in bare and "r.pdf" in bare
    failed = Caption(text="", source="ocr", error="vLLM down")
    assert figure_text(make_figure(ocr_text="2019 2020 Sales"), failed, file_name="r.pdf", page_number=4).strip()


def test_figure_text_combines_printed_caption_model_caption_and_inner_text() -> None:
    fig = make_figure(printed_caption="Figure 2: Sales by region", ocr_text="North South 2023")
    text = figure_text(fig, Caption(text="A bar chart of sales.", source="vllm"), file_name="r.pdf", page_number=1)
    assert text.index("Figure 2: Sales by region") < text.index("A bar chart of sales.") < text.index("North South")
    # Without a model caption, the words around the figure stand in for it.
    fig = make_figure(printed_caption="Figure 2", ocr_text="North", context_text="Sales rose in the North.")
    text = figure_text(fig, Caption(text="North", source="ocr"), file_name="r.pdf", page_number=1)
    assert "Sales rose in the North." in text and text.count("North") == 2  # OCR text is not repeated


def test_page_text_becomes_ordered_text_chunks(chunker: Chunker) -> None:
    body = " ".join(f"Sentence {i} says the revenue of unit {i} grew by {i} percent." for i in range(120))
    chunks = chunker.page_chunks(SRC, 9, parsed(body), [])
    assert len(chunks) > 3
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert all(c.kind == "text" and c.page.number == 3 and c.page_count == 9 for c in chunks)
    assert "Sentence 0 " in chunks[0].text and "Sentence 119 " in chunks[-1].text


def test_blank_page_has_no_text_chunk_but_keeps_its_figures(chunker: Chunker) -> None:
    fig = make_figure(ocr_text="Q1 Q2 Q3")
    chunks = chunker.page_chunks(SRC, 9, parsed("  \n ", fig), [Caption(text="Q1 Q2 Q3", source="ocr")])
    assert [c.kind for c in chunks] == ["figure"]
    assert chunks[0].figure is fig and chunks[0].region_index == 0 and "Q1 Q2 Q3" in chunks[0].text


def test_long_caption_is_split_under_the_embedding_window(chunker: Chunker, embedder) -> None:
    long_caption = " ".join(
        f"The {i}th bar of the chart shows that exports of product line {i} reached {i * 7} million dollars."
        for i in range(60)
    )
    tokenize = embedder.tokenizer()
    assert len(tokenize(long_caption)) > 3 * embedder.max_tokens
    fig = make_figure(printed_caption="Figure 7: Exports by product line")
    chunks = chunker.page_chunks(SRC, 9, parsed("", fig), [Caption(text=long_caption, source="vllm")])
    assert len(chunks) >= 3 and all(c.kind == "figure" and c.figure is fig for c in chunks)
    assert all(len(tokenize(c.text)) + 2 <= embedder.max_tokens for c in chunks)  # + [CLS] and [SEP]
    assert "59th bar" in chunks[-1].text
    assert len({c.chunk_index for c in chunks}) == len(chunks)


def test_each_figure_has_its_own_chunks_in_page_order(chunker: Chunker) -> None:
    figs = [make_figure(0, ocr_text="alpha"), make_figure(1, ocr_text="beta")]
    caps = [Caption(text="alpha", source="ocr"), Caption(text="beta", source="ocr")]
    chunks = chunker.page_chunks(SRC, 9, parsed("Body text.", *figs), caps)
    assert [(c.kind, c.region_index) for c in chunks] == [("text", -1), ("figure", 0), ("figure", 1)]


def _page_figure(ocr_text: str, figure_type: str = "other") -> Figure:
    return Figure(
        kind="page", figure_type=figure_type, bbox=(0, 0, 595, 842), image=b"png", mime="image/png",
        image_sha256="f" * 64, region_index=0, ocr_text=ocr_text,
    )  # fmt: skip


def test_a_scan_is_one_point_not_a_text_and_page_twin(chunker: Chunker) -> None:
    ocr = "Number of debit card users in India\n2014 2015 2016"
    fig = _page_figure(ocr)
    chunks = chunker.page_chunks(SRC, 9, parsed(ocr, fig), [Caption(text=ocr, source="ocr")])
    text, page = chunks
    assert text.kind == "text" and "debit card" in text.text
    assert page.kind == "page" and "debit card" not in page.text  # the OCR text is stored once
    vllm = Caption(text="A bar chart of debit card users.", source="vllm")
    (_, captioned) = chunker.page_chunks(SRC, 9, parsed(ocr, fig), [vllm])
    assert captioned.text == "A bar chart of debit card users."


def test_a_slide_point_keeps_only_what_the_slide_text_lacks(chunker: Chunker) -> None:
    fig = _page_figure("Quarterly results\nRevenue grew\nSALES BY REGION (from a picture)", "slide")
    (_, slide) = chunker.page_chunks(
        SRC, 9, parsed("Quarterly results\nRevenue grew", fig), [Caption(text="", source="ocr")]
    )
    assert slide.text == "Text in the slide: SALES BY REGION (from a picture)"

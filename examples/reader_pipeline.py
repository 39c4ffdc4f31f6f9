"""Build an index the LlamaIndex way: SimpleDirectoryReader + CapRLReader + IngestionPipeline → CapRLVectorStore.

    python examples/reader_pipeline.py examples/docs [--collection caprl-reader] [--query "..."]

CapRLReader turns each PDF, deck or image into one Document per page text and one per figure (captioned by
CapRL-3B through vLLM when it is reachable, else OCR text, with a warning), carrying the provenance the CLI
stores (file_path, page, kind, figure_type, the box as bbox_x0..bbox_y1, image_uri, ...). The pipeline
splits them (every node keeps the metadata and its file version's ref_doc_id), embeds them and writes them
to the caprl-index store: the embedded index by default (CAPRL_QDRANT_PATH), a server with
CAPRL_QDRANT_URL, in a collection of its own. Its docstore is persisted beside the index, so a second run
skips every Document it has seen (`DUPLICATES_ONLY`: all Documents of a file share its ref_doc_id, which
the upsert strategy would take for a single document); a changed file's new version replaces the old one.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from llama_index.core import SimpleDirectoryReader
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore

from caprl_index.config import Settings
from caprl_index.llama import CapRLEmbedding, CapRLReader, CapRLVectorStore, stable_node_id
from caprl_index.reader import SUPPORTED_EXTENSIONS


def build_pipeline(settings: Settings, store: CapRLVectorStore, embed: CapRLEmbedding) -> IngestionPipeline:
    splitter = SentenceSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        id_func=stable_node_id,  # a Document processed again overwrites its nodes instead of copying them
    )
    return IngestionPipeline(
        transformations=[splitter, embed],
        vector_store=store,
        docstore=SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY,
    )


def ingest_folder(folder: Path, settings: Settings, pipeline: IngestionPipeline) -> int:
    """Run the pipeline file by file (memory stays flat on a large folder); returns the nodes written."""
    written = 0
    with CapRLReader(settings) as reader:
        extractor = reader.file_extractor()
        files = SimpleDirectoryReader(
            str(folder), recursive=True, required_exts=list(SUPPORTED_EXTENSIONS), file_extractor=extractor
        )
        for docs in files.iter_data():
            nodes = pipeline.run(documents=docs)
            written += len(nodes)
            if docs:
                print(f"{docs[0].metadata['file_path']}: {len(docs)} documents -> {len(nodes)} new nodes")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).parent / "docs"))
    parser.add_argument("--collection", default="caprl-reader", help="collection to write (default caprl-reader)")
    parser.add_argument("--query", default="battery storage prices by year", help="a query to try afterwards")
    args = parser.parse_args(argv)
    # CapRLReader reads every supported type, so SimpleDirectoryReader's note about its own PDF reader is noise.
    logging.getLogger("llama_index.core.readers.file.base").setLevel(logging.ERROR)

    settings = Settings(collection=args.collection)
    persist_dir = settings.index_dir / f"pipeline-{args.collection}"
    embed = CapRLEmbedding(settings)
    with CapRLVectorStore(settings) as store:
        pipeline = build_pipeline(settings, store, embed)
        if persist_dir.exists():
            pipeline.load(str(persist_dir))
        started = time.perf_counter()
        written = ingest_folder(Path(args.folder), settings, pipeline)
        pipeline.persist(str(persist_dir))
        print(f"{written} nodes written to {args.collection!r} in {time.perf_counter() - started:.1f} s")

        for hit in store.as_retriever(similarity_top_k=3, group_by_page=True).retrieve(args.query):
            m = hit.node.metadata
            print(f"{hit.score:.3f} {m['file_name']} page {m['page']} {m['kind']} caption={m.get('caption_source')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

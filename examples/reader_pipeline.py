"""Build an index the LlamaIndex way: SimpleDirectoryReader + CapRLReader + IngestionPipeline → QdrantVectorStore.

    python examples/reader_pipeline.py examples/docs [--collection caprl-reader] [--query "..."]

CapRLReader turns each PDF, deck or image into one Document per page text and one per figure (captioned by
CapRL-3B through vLLM when it is reachable, else OCR text, with a warning), carrying the same provenance
metadata the CLI stores (file_path, page, kind, figure_type, bbox, caption_source, ...). The pipeline splits
them with SentenceSplitter (every node keeps the metadata), embeds them and writes them to a collection of
its own beside the CLI's. Its docstore is persisted beside the index, so a re-run only re-embeds Documents
whose text changed. Settings (vLLM URL, Qdrant path/URL, embedding model) are the CLI's: CAPRL_* or
caprl-index.toml.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from caprl_index.config import Settings
from caprl_index.reader import SUPPORTED_EXTENSIONS, CapRLEmbedding, CapRLReader


def open_client(settings: Settings) -> QdrantClient:
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClient(url=settings.qdrant_url, api_key=key)
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.qdrant_path))


def build_pipeline(settings: Settings, store: QdrantVectorStore, embed: CapRLEmbedding) -> IngestionPipeline:
    return IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap), embed],
        vector_store=store,
        docstore=SimpleDocumentStore(),  # Document ids are stable: unchanged Documents are skipped next run
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
    client = open_client(settings)
    try:
        store = QdrantVectorStore(client=client, collection_name=args.collection)
        pipeline = build_pipeline(settings, store, embed)
        if persist_dir.exists():
            pipeline.load(str(persist_dir))
        started = time.perf_counter()
        written = ingest_folder(Path(args.folder), settings, pipeline)
        pipeline.persist(str(persist_dir))
        print(f"{written} nodes written to {args.collection!r} in {time.perf_counter() - started:.1f} s")

        index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
        for hit in index.as_retriever(similarity_top_k=3).retrieve(args.query):
            m = hit.node.metadata
            box = f" bbox={[round(v) for v in m['bbox']]}" if m.get("bbox") else ""
            print(f"{hit.score:.3f} {m['file_name']} page {m['page']} {m['kind']}{box} caption={m['caption_source']}")
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

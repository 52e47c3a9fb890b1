"""One long-lived Strata process for the Chroma server tests: `python -m tests.scale.chroma_worker`.

Why not one `assistant` command per step: a command starts with an empty keyword index,
so it cannot show that an index kept across requests follows other processes' writes,
which is what an app process serving many users does. This process builds its knowledge
base from the environment (ASSISTANT_CHROMA_URL and the rest) exactly as the app does,
then answers one JSON request per stdin line with one JSON line on stdout:
{"op": "ingest", "paths": [...]}, {"op": "search", "query": Q, "k": N},
{"op": "delete", "name": NAME}, {"op": "docs"}.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def handle(services: Any, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "ingest":
        results = services.ingestor.ingest_paths(request["paths"])
        return {"results": [r.to_dict() for r in results]}
    if op == "search":
        hits = services.store.search(request["query"], k=request.get("k", 5), score_threshold=0.0)
        return {"hits": [h.to_dict() for h in hits]}
    if op == "delete":
        return {"deleted": services.store.delete_document(request["name"]).to_dict()}
    if op == "docs":
        return {"documents": [d.to_dict() for d in services.store.list_documents()]}
    return {"error": f"unknown op {op!r}"}


def main() -> int:
    from assistant.services import Services
    from assistant.settings import get_settings

    services = Services(get_settings())
    services.embedder.embed_query("warm up")  # load the model before saying ready
    services.store.count()  # and connect
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            reply = handle(services, json.loads(line))
        except Exception as exc:  # noqa: BLE001 - the test reads the failure
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

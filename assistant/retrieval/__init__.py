"""The knowledge base, flowing one way: loaders (files -> chunks, within ``limits``) ->
ingest (the rules, one result per file) -> store (chunks in Chroma: add, replace, delete,
list, search; each write all-or-nothing by ``generations``), with vectors (embeddings),
keyword scores (lexical) and the document list derived from chunk metadata (chunks)."""

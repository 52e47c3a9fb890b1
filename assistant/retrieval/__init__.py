"""The knowledge base: files -> chunks (loaders), vectors (embeddings), Chroma (store),
keyword scores (lexical) and the ingestion rules (ingest)."""

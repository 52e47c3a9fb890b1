"""The knowledge base: files -> chunks (loaders), vectors (embeddings), Chroma (store), rules (ingest)."""

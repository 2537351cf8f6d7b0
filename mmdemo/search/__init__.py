"""Vector search: FAISS indexes on disk (`index`, the only FAISS user); ingestion, search, judgements."""

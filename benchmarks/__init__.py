"""`eta bench`: serving latency, training throughput, ingest throughput and retrieval recall."""

"""The answer ledger: one row per answer, in SQLite or in PostgreSQL shared by replicas
(store, db, schema, migrations), the metrics table every report reads, what is kept when
text storage is off (redact), the cost model, and each answer for operators' tools: an
OpenTelemetry trace and Prometheus metrics (telemetry, prometheus)."""

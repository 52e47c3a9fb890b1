"""The answer ledger: one SQLite row per answer (store, db, migrations), the metrics table
every report reads, what is kept when text storage is off (redact), and the cost model."""

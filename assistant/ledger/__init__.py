"""The answer ledger: one SQLite row per answer (store, migrations) and the cost model."""

"""The DuckDB store: schema, snapshot load, micro-batch apply, history/current, checkpoint."""

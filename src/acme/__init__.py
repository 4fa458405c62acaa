"""ACME Analytics: log-based CDC from ACME's PostgreSQL into a DuckDB history and model."""

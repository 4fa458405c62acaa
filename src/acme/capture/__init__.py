"""Capture: the replication connection, pgoutput decoding, transactions, and the snapshot copy."""

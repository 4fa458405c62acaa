"""`acme verify`: does the warehouse still equal the source? (see `compare.py`)."""

from acme.verify.compare import TableCheck, VerifyOptions, VerifyReport, verify_warehouse

__all__ = ["TableCheck", "VerifyOptions", "VerifyReport", "verify_warehouse"]

"""ACME Analytics: log-based CDC from ACME's PostgreSQL into a DuckDB history and model."""

import os

# numpy, which pyarrow and DuckDB load, starts an OpenBLAS thread per extra core that spins
# some 0.1 s of CPU once loaded, beside whatever runs then (a first sync's copy); nothing here
# multiplies matrices.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

"""The lake: the warehouse's history as Apache Iceberg tables, committed exactly once.

A follower of the DuckDB warehouse (not of the slot): each lake commit appends what DuckDB's
history gained since the checkpoint the lake last recorded, so it never rewrites data files
and a crash between the two commits is caught up from DuckDB alone.
"""

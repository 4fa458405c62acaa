"""The business questions, defined once: SQL, parameters and the freshness of each answer."""

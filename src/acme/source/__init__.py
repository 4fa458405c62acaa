"""ACME's PostgreSQL source: embedded server, provisioning, seed generator, traffic simulator."""

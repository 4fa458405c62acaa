"""The HTTP API: the same report calls as the CLI, over FastAPI. No logic of its own."""

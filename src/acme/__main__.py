"""`python -m acme` runs the CLI."""

from acme.cli.main import main

main()

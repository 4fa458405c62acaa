"""The `acme` command line: parse flags, call the stages, render with Rich."""

"""A connection whose statements without results can wait, to reach DuckDB in one call.

A batch's merge is some forty statements. Each call into DuckDB gives up the GIL and takes it
back when the statement ends, and taking it back waits while another thread runs Python (the
stream's decoding, the API's requests): up to the interpreter's switch interval, 5 ms, per
statement. DuckDB runs the statements of one multi-statement call without the GIL, so the
statements whose results nobody reads are gathered (`later`) and sent, in order, with the next
statement that is read (`execute`: DuckDB returns the result of a call's last statement), or
when the caller is done with them (`flush`).
"""

import duckdb


class DeferringConnection:
    def __init__(self, db: duckdb.DuckDBPyConnection):
        self.db = db
        self.waiting: list[str] = []

    def later(self, statement: str) -> None:
        """Run `statement` (no parameters; its result is not read) before the next one."""
        self.waiting.append(statement)

    def execute(self, statement: str, parameters: list | None = None) -> duckdb.DuckDBPyConnection:
        """Run what waits, then `statement` (whose `parameters` these are), in one call;
        returns the connection holding the result of `statement`."""
        script, self.waiting = ";\n".join([*self.waiting, statement]), []
        return self.db.execute(script, parameters)

    def flush(self) -> None:
        if self.waiting:
            script, self.waiting = ";\n".join(self.waiting), []
            self.db.execute(script)

    def discard(self) -> None:
        """Forget what waits (its batch failed and rolled back)."""
        self.waiting = []

"""Consoles shared by every command (results on stdout, progress and errors on stderr), and
writing an answer to a file without leaving half of it behind."""

import os
import tempfile
from pathlib import Path

from rich.console import Console

from acme.errors import OutputError

console = Console()
err_console = Console(stderr=True)


def check_output_file(path: Path) -> Path:
    """Refuse, before any work, a path that can never take the answer."""
    if path.is_dir():
        raise OutputError(f"--output {path} is a directory; name a file in it")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {path.parent} does not exist; "
                          "create it first")
    return path


def check_output_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise OutputError(f"--output-dir {path} is a file, not a directory; name a directory")
    if not path.exists() and not path.parent.is_dir():
        raise OutputError(f"cannot create {path}: directory {path.parent} does not exist")
    return path


def write_output(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: a regular file is written beside it and
    renamed into place; a device (a pipe, /dev/stdout) is written directly."""
    check_output_file(path)
    try:
        if path.exists() and not path.is_file():
            with open(path, "w") as device:
                device.write(text)
            return
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None

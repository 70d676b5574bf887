"""The `runwatch` command line.

`parser.py` declares the commands and their arguments; `database.py` gets a
command's database ready (settings from the arguments, SQLite file checks,
migration, engines); `commands.py` and `export.py` hold one function per
command, which calls the service and reports in one line; `main.py` runs one
command and turns failures into one line and an exit status.
"""

from runwatch.cli.main import main
from runwatch.cli.parser import build_parser

__all__ = ["build_parser", "main"]

"""`python -m runwatch` runs the command line."""

from runwatch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

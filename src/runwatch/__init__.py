"""runwatch: an async, SQL-backed introspection API over LLM pipeline runs."""

__version__ = "0.1.0"

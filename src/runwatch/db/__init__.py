"""Database layer: tables, portable column types, engines and dialect helpers."""

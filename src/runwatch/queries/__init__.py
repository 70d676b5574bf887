"""Async query functions taking a connection: filters, sorting, pagination, aggregates."""

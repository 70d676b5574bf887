"""Services: the decisions (lifecycle, leases, scoring, compares, summaries) over `queries/`."""

"""`runwatch export`: stream runs from the API to stdout or a file, with a progress bar."""

from __future__ import annotations

import argparse
import os
import sys

EXPORT_FILTERS = {
    "runs": ("layer_name", "status", "since", "until", "model_name", "sort"),
    "extraction-runs": (
        "prompt_id", "config_id", "document_name", "status", "since", "until", "sort",
    ),
}  # fmt: skip


def cmd_export(args: argparse.Namespace) -> int:
    """Stream an export from the API to stdout or a file; a progress bar on a terminal."""
    import logging

    from tqdm import tqdm

    from runwatch.client import (
        InvalidArgumentError,
        RunwatchClient,
        RunwatchError,
        describe,
    )

    filters = {name: getattr(args, name) for name in EXPORT_FILTERS[args.kind]}
    filters = {name: value for name, value in filters.items() if value is not None}
    wrong = [
        name
        for names in EXPORT_FILTERS.values()
        for name in names
        if name not in EXPORT_FILTERS[args.kind] and getattr(args, name) is not None
    ]
    if wrong:
        option = "--" + wrong[0].replace("_", "-")
        print(f"runwatch: error: {option} does not filter {args.kind}", file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise here
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        with RunwatchClient(args.url, api_key=args.api_key) as client:
            runs = args.kind == "runs"
            export = client.export_runs if runs else client.export_extraction_runs
            bar = None
            if sys.stderr.isatty():
                count = client.list_runs if runs else client.list_extraction_runs
                list_filters = {k: v for k, v in filters.items() if k != "sort"}
                total = count(limit=1, **list_filters).total
                bar = tqdm(total=total, unit=" runs", file=sys.stderr, unit_scale=True)
            try:
                rows = export(
                    out, format=args.format, progress=bar.update if bar else None, **filters
                )
            finally:
                if bar is not None:
                    bar.close()
    except RunwatchError as exc:
        if args.output:  # an incomplete file must not pass for an export
            out.close()
            os.remove(args.output)
        if isinstance(exc, InvalidArgumentError):
            print(f"runwatch: error: {exc.detail}", file=sys.stderr)
            return 2
        print(f"runwatch: error: export failed: {describe(exc)}", file=sys.stderr)
        return 1
    finally:
        if not out.closed:
            out.flush()
            if args.output:
                out.close()
    print(f"runwatch: exported {rows} {args.kind}", file=sys.stderr)
    return 0

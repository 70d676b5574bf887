"""Gzip for JSON and dashboard assets, with ETags that name the encoding they belong to."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A strong ETag promises byte-identical bodies, so a gzip body cannot carry the tag of
# the identity body. Starlette's GZipMiddleware leaves ETags alone; this wrapper gives a
# compressed answer the tag "x-gzip" for "x" and reads "x-gzip" back as "x" in
# If-None-Match, so the routes and StaticFiles keep comparing their own tags.
GZIP_SUFFIX = "-gzip"
MINIMUM_SIZE = 500
# Level 6 compresses JSON nearly as well as 9 at a fraction of the CPU.
COMPRESS_LEVEL = 6
# Streamed exports go out as they are: compressing hundreds of MB costs the server
# more CPU than reading and writing them (7 s for 1M runs as NDJSON, twice the rest).
STREAMED_EXPORTS = ("application/x-ndjson", "text/csv")


def _strip_suffixes(value: str) -> tuple[str, bool]:
    tags = []
    stripped = False
    for tag in value.split(","):
        tag = tag.strip()
        if tag.endswith(f'{GZIP_SUFFIX}"'):
            tag = tag[: -len(GZIP_SUFFIX) - 1] + '"'
            stripped = True
        tags.append(tag)
    return ", ".join(tags), stripped


class GZipWithETags:
    """`GZipMiddleware` whose compressed answers carry their own strong ETag."""

    def __init__(
        self, app: ASGIApp, minimum_size: int = MINIMUM_SIZE, compresslevel: int = COMPRESS_LEVEL
    ) -> None:
        self.gzip = GZipMiddleware(
            app,
            minimum_size=minimum_size,
            compresslevel=compresslevel,
            exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, *STREAMED_EXPORTS),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.gzip(scope, receive, send)
            return
        accepts_gzip = conditional = False
        for name, value in scope["headers"]:
            if name == b"accept-encoding" and b"gzip" in value:
                accepts_gzip = True
            elif name == b"if-none-match":
                conditional = True
        if not accepts_gzip and not conditional:
            # Nothing to compress and no tag to read back: no tag to rewrite either.
            await self.gzip(scope, receive, send)
            return
        asked_for_gzip_copy = False
        headers = []
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                text, stripped = _strip_suffixes(value.decode("latin-1"))
                asked_for_gzip_copy = asked_for_gzip_copy or stripped
                value = text.encode("latin-1")
            headers.append((name, value))

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                etag = out.get("etag")
                if etag and not etag.startswith("W/") and etag.endswith('"'):
                    compressed = out.get("content-encoding") == "gzip"
                    # A 304 confirms the copy the client has: the gzip one if it sent that tag.
                    confirms_gzip = (
                        message["status"] == 304 and asked_for_gzip_copy and accepts_gzip
                    )
                    if compressed or confirms_gzip:
                        out["etag"] = etag[:-1] + f'{GZIP_SUFFIX}"'
            await send(message)

        # In place: the middleware around this one reads what the router adds to the scope.
        scope["headers"] = headers
        await self.gzip(scope, receive, send_tagged)

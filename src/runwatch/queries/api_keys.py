"""API keys in the database: create, list, revoke, and load the active set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from runwatch.db.tables import api_keys
from runwatch.domain import API_KEY_SCOPES
from runwatch.errors import InvalidArgument, NotFound
from runwatch.security import ActiveKey, KeySet, display_prefix, hash_token, new_token


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    scope: str
    token: str


async def create_api_key(conn: AsyncConnection, *, name: str, scope: str) -> CreatedKey:
    """Store a new key's hash and return the token, which is not kept anywhere."""
    if scope not in API_KEY_SCOPES:
        raise InvalidArgument(f"scope must be one of {', '.join(API_KEY_SCOPES)}, not {scope!r}")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidArgument("name must be 1-200 characters")
    token = new_token()
    key_id = str(ULID())
    await conn.execute(
        insert(api_keys).values(
            id=key_id,
            name=name,
            scope=scope,
            token_hash=hash_token(token),
            prefix=display_prefix(token),
            created_at=datetime.now(UTC),
        )
    )
    return CreatedKey(id=key_id, name=name, scope=scope, token=token)


async def list_api_keys(conn: AsyncConnection) -> list[dict[str, object]]:
    """Every key, revoked ones too, oldest first; never the hash."""
    rows = await conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.name,
            api_keys.c.scope,
            api_keys.c.prefix,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        ).order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return [dict(row) for row in rows.mappings()]


async def revoke_api_key(conn: AsyncConnection, *, key: str) -> int:
    """Revoke the key with this id, or every active key with this name; returns how many."""
    now = datetime.now(UTC)
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.revoked_at.is_(None))
        .where((api_keys.c.id == key) | (api_keys.c.name == key))
        .values(revoked_at=now)
    )
    if not result.rowcount:
        raise NotFound(f"No active API key with id or name {key!r}.")
    return result.rowcount


async def load_key_set(conn: AsyncConnection) -> KeySet:
    """The active keys by hash, and whether any key (even revoked) exists."""
    rows = await conn.execute(
        select(api_keys.c.id, api_keys.c.name, api_keys.c.scope, api_keys.c.token_hash).where(
            api_keys.c.revoked_at.is_(None)
        )
    )
    active = {row.token_hash: ActiveKey(**row._mapping) for row in rows}
    any_created = bool(active) or bool(await conn.scalar(select(exists().select_from(api_keys))))
    return KeySet(by_hash=active, any_created=any_created)

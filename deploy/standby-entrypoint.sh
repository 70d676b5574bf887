#!/bin/sh
# A streaming hot standby of the `postgres` service: copy it once with
# pg_basebackup -R (which writes standby.signal and primary_conninfo), then run.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h postgres -U "$POSTGRES_USER"; do sleep 1; done
    PGPASSWORD="$POSTGRES_PASSWORD" pg_basebackup -h postgres -U "$POSTGRES_USER" \
        -D "$PGDATA" -R -X stream --checkpoint=fast
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on

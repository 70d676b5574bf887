#!/bin/sh
# Runs once when the primary's data directory is created: let the standby
# connect for streaming replication with the same credentials.
set -e
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"

#!/bin/sh
# The Dagster image's entrypoint: make sure Dagster's own database exists on the server (RDS creates only the
# platform's), then run the task's command: the webserver, the daemon, or a run (`dagster api execute_run ...`).
set -eu
fraud db ensure-dagster-storage >/dev/null
# the migration step: only the task given the master secret's ARN (the daemon, infra/orchestration.py) migrates,
# as the schema's owner; every other component logs in as its own role
if [ -n "${FRAUD_DB_SECRET_ARN:-}" ]; then fraud db upgrade >/dev/null; fi
exec "$@"

#!/bin/sh
# The Dagster image's entrypoint: make sure Dagster's own database exists on the server (RDS creates only the
# platform's), then run the task's command: the webserver, the daemon, or a run (`dagster api execute_run ...`).
set -eu
fraud db ensure-dagster-storage >/dev/null
exec "$@"

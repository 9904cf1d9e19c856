# The Dagster image: webserver, daemon and run worker of the fraud platform (deploy/README.md).
#
# Build context: the repository root, after `dist/wheelhouse/` holds the project's wheel and a wheel of every pinned
# runtime dependency; the build installs from it only (`--no-index`: no package index is reached).
# The RDS CA bundle must be in deploy/rds-ca/global-bundle.pem (the operator's build downloads it, see
# deploy/README.md): the image verifies the database's certificate and nothing is fetched at run time.
#
# ENTRYPOINT deploy/entrypoint.sh creates Dagster's database on the server if it is missing, then runs the command,
# which ECS (and the EcsRunLauncher for runs) sets:
#   webserver (CMD, port 3000)
#   daemon: ["dagster-daemon", "run", "-w", "workspace.yaml"]
#   run worker, set by the EcsRunLauncher per run: ["dagster", "api", "execute_run", "<serialized run arguments>"]

# Debian 12 with Python 3.11 (the project's interpreter): the official image by name, from whatever registry the
# operator's builder is configured with; the tests pass a base made with debootstrap (tests/deploy/image_base.py).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS install
COPY dist/wheelhouse /wheelhouse
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --disable-pip-version-check /wheelhouse/*.whl \
 && /opt/venv/bin/python -c "import dagster_aws.ecs, dagster_postgres, dagster_webserver, assets.definitions"

FROM ${BASE}
# 0: a build without the bundle (local tests, whose database has no TLS); production builds keep 1
ARG REQUIRE_RDS_CA=1
RUN useradd --system --create-home --home-dir /opt/dagster --uid 10001 --shell /usr/sbin/nologin dagster \
 && mkdir -p /opt/dagster/home /opt/dagster/app /opt/dagster/fraud /etc/ssl/certs/rds
COPY --from=install /opt/venv /opt/venv
COPY deploy/rds-ca/ /etc/ssl/certs/rds/
RUN if [ "$REQUIRE_RDS_CA" = 1 ] && ! grep -q "BEGIN CERTIFICATE" /etc/ssl/certs/rds/global-bundle.pem; then \
      echo "deploy/rds-ca/global-bundle.pem is missing: download the RDS CA bundle first (deploy/README.md)" >&2; \
      exit 1; \
    fi
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/entrypoint.sh /opt/dagster/entrypoint.sh
COPY workspace.yaml /opt/dagster/app/workspace.yaml
RUN chown -R dagster:dagster /opt/dagster/home /opt/dagster/fraud

# No secret here: the database host, user and password (DAGSTER_PG_*) and the platform's settings (FRAUD_*) come
# from the ECS task definition (the password as an ECS secret).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    FRAUD_HOME=/opt/dagster/fraud \
    DAGSTER_PG_PORT=5432 \
    DAGSTER_PG_DB=dagster \
    PGSSLMODE=verify-full \
    PGSSLROOTCERT=/etc/ssl/certs/rds/global-bundle.pem

USER dagster
WORKDIR /opt/dagster/app
EXPOSE 3000
ENTRYPOINT ["/opt/dagster/entrypoint.sh"]
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"]

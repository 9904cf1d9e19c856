"""PostgreSQL: the embedded server, the star schema, migrations and bulk loads."""

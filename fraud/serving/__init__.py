"""The model in use: batch scoring into PostgreSQL and the real-time API."""

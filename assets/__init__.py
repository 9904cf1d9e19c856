"""The Dagster code location: thin assets over `fraud/`, grouped by domain."""

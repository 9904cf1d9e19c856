"""Card-fraud detection domain library: no Dagster and no Pulumi imports here."""

"""Settings, the raw-data schema, object storage, AWS clients and card tokenisation: what every layer shares."""

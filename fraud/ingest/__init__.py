"""Raw data in: CSV files and the simulator into the raw zone, with validation and quarantine."""

"""The model's input: the feature catalogue, its shared computations and the online (per-request) path."""

"""The network, its baselines, evaluation, metrics, attribution, drift and the model registry."""

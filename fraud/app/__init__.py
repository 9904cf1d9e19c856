"""Entry points that orchestrate the layers below: the command line, `fraud evaluate`, the demo, the UI, packaging."""

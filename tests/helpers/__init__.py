"""Helpers the tests import: homes, ports, seed data, worlds, leak scans, figures (fixtures stay in conftest)."""

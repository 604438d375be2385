"""Metrics of generated samples, registered as ``ganzoo.metrics`` entry points."""

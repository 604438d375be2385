"""ganzoo-myplugin: components for ganzoo, registered through the entry points in pyproject.toml.

Nothing here is imported by ganzoo until a recipe (or ``ganzoo show``) uses a component.
"""

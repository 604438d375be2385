"""The built-in components, registered through the entry points in ganzoo's pyproject.toml."""

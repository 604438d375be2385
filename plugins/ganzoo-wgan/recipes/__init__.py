"""Recipes that use the WGAN-GP components; installed with the plugin as ``ganzoo_wgan.recipes``."""

"""Ready-to-run recipes, one per zoo member; installed with ganzoo as ``ganzoo.recipes``."""

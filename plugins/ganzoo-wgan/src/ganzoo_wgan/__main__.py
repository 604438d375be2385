"""``python -m ganzoo_wgan [NAME]``: print the path of a shipped recipe, or list them all.

For example ``ganzoo run "$(python -m ganzoo_wgan wgan_gp_grid)"``.
"""

import sys

from ganzoo_wgan import bundled_recipes

found = bundled_recipes()
if len(sys.argv) == 1:
    for name, path in found.items():
        print(f"{name}\t{path}")
elif sys.argv[1] in found:
    print(found[sys.argv[1]])
else:
    sys.exit(f"no recipe {sys.argv[1]!r} in ganzoo-wgan (recipes: {', '.join(found)})")

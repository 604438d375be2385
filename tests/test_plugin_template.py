"""The plugin template installs with pip, registers its loss, passes its own tests, uninstalls."""

from __future__ import annotations

from conftest import REPO
from plugin_env import installed_losses, isolated_python, pip, pip_install_copy, run_in

TEMPLATE = REPO / "plugins" / "template"


def test_template_installs_tests_and_uninstalls(tmp_path):
    python = isolated_python(tmp_path)
    before = installed_losses(python)
    copy = pip_install_copy(python, TEMPLATE, tmp_path)
    assert installed_losses(python) == {**before, "relativistic": "ganzoo-myplugin 0.1.0"}
    tests = run_in(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=copy)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout
    assert "Successfully uninstalled ganzoo-myplugin-0.1.0" in pip(
        python, "uninstall", "-y", "ganzoo-myplugin"
    )
    assert installed_losses(python) == before

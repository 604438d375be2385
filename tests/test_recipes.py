"""Recipes: the bundled ones validate; bad ones give one readable line per problem, exit 2."""

from __future__ import annotations

import tomllib

import pytest
from conftest import REPO, run_cli

from ganzoo.errors import RecipeError
from ganzoo.overrides import apply_overrides
from ganzoo.recipe import find_recipe, installed_recipes, load_recipe, recipe_from_dict
from ganzoo.registry import registry

GOOD = """\
schema_version = 1
name = "ring_test"
seed = 3

[generator]
name = "mlp"
hidden = [32, 32]

[discriminator]
name = "mlp"
hidden = [32, 32]

[loss]
name = "non-saturating"

[data]
name = "ring"

[train]
steps = 10
"""


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "x.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def check_bad(path, *extra, expect: list[str]):
    """Run ``ganzoo validate`` and check: exit 2, no traceback, each expected line present."""
    done = run_cli("validate", str(path), *extra)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    for want in expect:
        assert want in lines, f"{want!r} not in {lines}"
    return lines


def test_every_installed_recipe_validates_with_its_networks():
    from ganzoo.build import check_networks

    recipes = installed_recipes()
    assert {"vanilla_mnist", "quickstart"} <= set(recipes)
    for name in recipes:  # what `ganzoo validate NAME` checks, in this process
        check_networks(load_recipe(name))
    done = run_cli("validate", "dcgan_mnist")
    assert done.returncode == 0, done.stderr
    assert ": ok (dcgan_mnist: generator dcgan" in done.stdout


def test_vanilla_mnist_is_the_seeds_vanilla_gan():
    recipe = load_recipe(REPO / "recipes" / "vanilla_mnist.toml")
    gen, disc = recipe.components["generator"], recipe.components["discriminator"]
    assert (gen.name, disc.name, recipe.components["loss"].name) == ("mlp", "mlp", "non-saturating")
    assert gen.params.latent_dim == 100
    assert recipe.train.batch_size == 64
    for opt in (recipe.train.generator_optimizer, recipe.train.discriminator_optimizer):
        assert (opt.name, opt.lr, opt.betas) == ("adam", 2e-4, (0.5, 0.999))


def test_resolved_recipe_round_trips(write):
    recipe = load_recipe(write(GOOD), ["generator.latent_dim=7"])
    again = recipe_from_dict(tomllib.loads(recipe.to_toml()))
    assert again.to_dict() == recipe.to_dict()
    assert again.components["generator"].params.latent_dim == 7
    assert again.to_dict()["train"]["generator_optimizer"]["lr"] == 2e-4


def test_malformed_toml(write):
    path = write('schema_version = 1\nname = "x"\n[generator\nname = "mlp"\n')
    lines = check_bad(path, expect=[])
    assert len(lines) == 1 and lines[0].startswith(f"{path}: invalid TOML:")
    assert "line 3" in lines[0]


def test_wrong_types_name_every_field(write):
    text = GOOD.replace("hidden = [32, 32]", 'hidden = [32, "wide"]', 1).replace(
        "steps = 10", 'steps = "many"\nbatch_size = -4'
    )
    path = write(text)
    check_bad(
        path,
        expect=[
            f"{path}: generator.hidden[1]: Input should be a valid integer, unable to parse string as an integer",
            f"{path}: train.steps: Input should be a valid integer, unable to parse string as an integer",
            f"{path}: train.batch_size: Input should be greater than 0",
        ],
    )


def test_unknown_keys_suggest(write):
    text = GOOD.replace("hidden = [32, 32]", "hiden = [32, 32]", 1).replace(
        "steps = 10", "stepz = 10"
    )
    path = write(text + "\n[evaluation]\nmetrics = []\n")
    check_bad(
        path,
        expect=[
            f"{path}: generator.hiden: unknown key 'hiden'; did you mean 'hidden'?",
            f"{path}: train.stepz: unknown key 'stepz'; did you mean 'steps'?",
            f"{path}: evaluation: unknown key 'evaluation'; did you mean 'eval'?",
        ],
    )


def test_unknown_component_name_suggests(write):
    path = write(GOOD.replace('name = "non-saturating"', 'name = "non-saturatin"'))
    lines = check_bad(path, expect=[])
    installed = ", ".join(registry("losses").names())  # the built-ins and any plugins
    assert lines == [
        f"{path}: loss.name: unknown loss 'non-saturatin'; did you mean 'non-saturating'? "
        f"(installed losses: {installed})"
    ]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    assert check_bad(path, expect=[f"{path}: no such file"]) == [f"{path}: no such file"]


def test_unknown_bundled_name():
    lines = check_bad("vanila_mnist", expect=[])
    assert "did you mean 'vanilla_mnist'?" in lines[0]


def test_a_folder_does_not_hide_an_installed_recipe(tmp_path, monkeypatch):
    # a bench or run folder named after its recipe, in the working folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").mkdir()
    (tmp_path / "nothing").mkdir()
    assert find_recipe("quickstart") == installed_recipes()["quickstart"]
    assert load_recipe("quickstart").name == "quickstart"
    with pytest.raises(RecipeError, match="nothing: a folder, not a recipe file, and no"):
        find_recipe("nothing")
    # a file of that name still wins
    (tmp_path / "ring").write_text(GOOD)
    assert load_recipe("ring").name == "ring_test"


def test_wrong_schema_version(write):
    path = write(GOOD.replace("schema_version = 1", "schema_version = 2"))
    check_bad(path, expect=[f"{path}: schema_version: this ganzoo reads schema_version 1, not 2"])


def test_missing_sections_and_discriminator(write):
    path = write(GOOD.replace('[discriminator]\nname = "mlp"\nhidden = [32, 32]\n', ""))
    check_bad(
        path,
        expect=[
            f"{path}: discriminator: missing section: loss 'non-saturating' needs a discriminator"
        ],
    )
    path = write('schema_version = 1\nname = "x"\n[loss]\nname = "hinge"\n', "y.toml")
    check_bad(path, expect=[f"{path}: generator: Field required", f"{path}: data: Field required"])


def test_bad_set(write):
    path = write(GOOD)
    check_bad(path, "--set", "train.steps", expect=[
        "--set train.steps: expected KEY.PATH=VALUE, e.g. train.steps=500"
    ])  # fmt: skip
    check_bad(path, "--set", "generator.hidden=[1,", expect=[])
    check_bad(
        path, "--set", "seed.deeper=1", expect=["--set seed.deeper=1: seed is a value, not a table"]
    )
    check_bad(
        path,
        "--set",
        "generator.hiden=[8]",
        expect=[
            f"{path} (--set generator.hiden=[8]): generator.hiden: unknown key 'hiden'; did you mean 'hidden'?"
        ],
    )
    check_bad(
        path,
        "--set",
        "train.steps=ten",
        expect=[
            f"{path} (--set train.steps=ten): train.steps: ten is not a TOML value (quote strings: --set 'train.steps=\"...\"')"
        ],
    )


def test_set_overrides_parse_toml_values(write):
    recipe = load_recipe(
        write(GOOD),
        [
            "generator.hidden=[8, 16]",
            "train.generator_optimizer.lr=1e-3",
            "data.name=grid",
            "seed=9",
        ],
    )
    assert recipe.components["generator"].params.hidden == [8, 16]
    assert recipe.train.generator_optimizer.lr == 1e-3
    assert recipe.components["data"].name == "grid"
    assert recipe.seed == 9


def test_apply_overrides_does_not_touch_the_input():
    data = {"train": {"steps": 1}}
    new, paths = apply_overrides(data, ["train.steps=5", "eval.metrics=['modes']"])
    assert data == {"train": {"steps": 1}}
    assert new == {"train": {"steps": 5}, "eval": {"metrics": ["modes"]}}
    assert paths == {"train.steps": "train.steps=5", "eval.metrics": "eval.metrics=['modes']"}


def test_networks_must_fit_the_data(write):
    path = write(GOOD.replace('name = "mlp"\nhidden = [32, 32]', 'name = "dcgan"', 1))
    check_bad(
        path,
        expect=[
            f"{path}: generator: dcgan: the dcgan generator needs square images of size 28, 32, 64; "
            "the data gives samples of shape (2,)"
        ],
    )
    path = write(GOOD.replace("[train]", '[train]\nbatch_size = 10').replace(
        'hidden = [32, 32]\n\n[loss]', 'hidden = [32, 32]\npack = 4\n\n[loss]'
    ), "packed.toml")  # fmt: skip
    check_bad(
        path,
        expect=[
            f"{path}: discriminator: mlp: batch of 10 is not a multiple of pack=4 (train.batch_size = 10)"
        ],
    )


def test_library_errors_carry_lines(write):
    with pytest.raises(RecipeError) as info:
        load_recipe(write(GOOD.replace("seed = 3", "seed = 'x'")))
    assert info.value.lines == [
        f"{info.value.lines[0].split(':')[0]}: seed: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_eval_params_are_validated(write):
    path = write(
        GOOD + '\n[eval]\nmetrics = ["kid"]\n[eval.params.kid]\nsubsets = 0\n'
        "[eval.params.modes]\nthreshold = 2.0\n"
    )
    check_bad(
        path,
        expect=[
            f"{path}: eval.params.kid.subsets: Input should be greater than or equal to 1",
            f"{path}: eval.params.modes: metric 'modes' is not in eval.metrics",
        ],
    )
    fine = load_recipe(
        write(GOOD + '\n[eval]\nmetrics = ["kid"]\n[eval.params.kid]\nsubsets = 5\n', "ok.toml")
    )
    assert fine.shell.eval.params == {"kid": {"subsets": 5}}

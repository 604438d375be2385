"""``--set`` values that are not TOML: strings where the field takes text, else "quote strings"."""

from __future__ import annotations

import tomllib

from conftest import run_cli

from ganzoo.recipe import load_recipe

TAGGED_LOSS = '''
from pathlib import Path
from typing import Literal

from ganzoo.zoo.losses import NonSaturatingLoss


class TaggedLoss(NonSaturatingLoss):
    """The non-saturating loss with parameters of the types --set text can fill."""

    class Params(NonSaturatingLoss.Params):
        notes: Path | None = None
        mode: Literal["fast", "careful"] = "fast"
        count: int = 1
'''


def resolved(*args: str) -> dict:
    """``ganzoo validate ARGS --print`` as a subprocess: its exit 0 and the resolved recipe."""
    done = run_cli("validate", *args, "--print")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return tomllib.loads(done.stdout)


def refused(*args: str) -> list[str]:
    """``ganzoo validate ARGS`` as a subprocess: its exit 2 and its error lines."""
    done = run_cli("validate", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()


def test_unquoted_text_sets_a_path_field():
    recipe = resolved(
        "dcgan_image_folder", "--set", "data.path=images/cats", "--set", "eval.extractor=auto"
    )
    assert recipe["data"]["path"] == "images/cats"
    spaced = resolved("dcgan_image_folder", "--set", "data.path=/srv/my photos/2024-01")
    assert spaced["data"]["path"] == "/srv/my photos/2024-01"


def test_unquoted_text_sets_a_components_string_field_and_literals():
    recipe = resolved(
        "acgan_mnist", "--set", "loss.adversarial=hinge", "--set", "loss.adversarial_params={}",
        "--set", "data.split=test",
        "--set", "train.fake_labels=data", "--set", "train.data_on_device=never",
    )  # fmt: skip
    assert recipe["loss"]["adversarial"] == "hinge"
    assert recipe["data"]["split"] == "test"
    assert recipe["train"]["fake_labels"] == "data"
    assert recipe["train"]["data_on_device"] == "never"


def test_unquoted_text_is_still_validated_as_the_field_says():
    lines = refused("cgan_mnist", "--set", "train.fake_labels=uniformly")
    source = lines[0].split(" (--set")[0]
    assert lines == [
        f"{source} (--set train.fake_labels=uniformly): train.fake_labels: "
        "Input should be 'uniform' or 'data'"
    ]


def test_unquoted_text_for_a_number_says_to_quote_strings():
    lines = refused("quickstart", "--set", "train.steps=abc")
    source = lines[0].split(" (--set")[0]
    assert source.endswith("quickstart.toml")
    assert lines == [
        f"{source} (--set train.steps=abc): train.steps: abc is not a TOML value "
        "(quote strings: --set 'train.steps=\"...\"')"
    ]
    # a component's field, a boolean and a table: one line each
    lines = refused(
        "quickstart", "--set", "generator.latent_dim=big", "--set", "train.compile=yes",
        "--set", "train.generator_optimizer=adam",
    )  # fmt: skip
    assert lines == [
        f"{source} (--set train.compile=yes): train.compile: yes is not a TOML value "
        "(quote strings: --set 'train.compile=\"...\"')",
        f"{source} (--set train.generator_optimizer=adam): train.generator_optimizer: adam is "
        "not a TOML value (quote strings: --set 'train.generator_optimizer=\"...\"')",
        f"{source} (--set generator.latent_dim=big): generator.latent_dim: big is not a TOML "
        "value (quote strings: --set 'generator.latent_dim=\"...\"')",
    ]
    # a metric's parameter, known once the metric is
    lines = refused(
        "quickstart", "--set", "eval.metrics=['kid']", "--set", "eval.params.kid.subsets=many"
    )
    assert lines == [
        f"{source} (--set eval.params.kid.subsets=many): eval.params.kid.subsets: many is not "
        "a TOML value (quote strings: --set 'eval.params.kid.subsets=\"...\"')",
    ]


def test_unquoted_text_for_an_unknown_key_is_the_unknown_key():
    lines = refused("dcgan_image_folder", "--set", "data.pth=images/cats")
    assert lines[0].endswith(
        "(--set data.pth=images/cats): data.pth: unknown key 'pth'; did you mean 'path'?"
    )
    assert len(lines) == 1


def test_text_that_starts_like_toml_must_be_toml():
    assert refused("quickstart", "--set", "generator.hidden=[64, 64") == [
        "--set generator.hidden=[64, 64: not a TOML value (Unclosed array (at end of document))"
    ]
    assert refused("quickstart", "--set", "description=") == [
        "--set description=: no value (for an empty string: --set 'description=\"\"')"
    ]


def test_toml_values_work_as_before():
    recipe = resolved(
        "quickstart", "--set", "train.steps=500", "--set", "generator.hidden=[8, 16]",
        "--set", "train.compile=true", "--set", 'description="ring, small"',
        "--set", "train.generator_optimizer.lr=1e-3", "--set", "train.ema=0.0",
        "--set", "data.name='grid'", "--set", "seed=9",
    )  # fmt: skip
    assert recipe["train"]["steps"] == 500 and recipe["train"]["compile"] is True
    assert recipe["generator"]["hidden"] == [8, 16]
    assert recipe["description"] == "ring, small"
    assert recipe["train"]["generator_optimizer"]["lr"] == 1e-3
    assert recipe["data"]["name"] == "grid" and recipe["seed"] == 9
    # a TOML value of the wrong type is the field's error, not a quoting hint
    lines = refused("quickstart", "--set", "description=5")
    assert lines[0].endswith("(--set description=5): description: Input should be a valid string")


def test_unquoted_text_fills_a_plugins_path_and_literal_fields(plugin_site):
    plugin_site(
        "ganzoo-tagged", "0.1", {"ganzoo.losses": {"tagged": "tagged_loss:TaggedLoss"}},
        {"tagged_loss": TAGGED_LOSS},
    )  # fmt: skip
    recipe = resolved(
        "quickstart", "--set", "loss.name=tagged", "--set", "loss.notes=out/notes.txt",
        "--set", "loss.mode=careful",
    )  # fmt: skip
    assert recipe["loss"]["notes"] == "out/notes.txt" and recipe["loss"]["mode"] == "careful"
    lines = refused("quickstart", "--set", "loss.name=tagged", "--set", "loss.count=three")
    assert lines[0].endswith(
        "(--set loss.count=three): loss.count: three is not a TOML value "
        "(quote strings: --set 'loss.count=\"...\"')"
    )
    assert len(lines) == 1
    # the library call takes the same path: the value is a plain str in the recipe
    params = load_recipe("quickstart", ["loss.name=tagged", "loss.notes=a/b"]).components["loss"]
    assert str(params.params.notes) == "a/b"

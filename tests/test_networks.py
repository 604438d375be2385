"""The built-in generators and discriminators: shapes, ranges, options, refusals, sizes.

Parameter counts are checked three ways: against ``ganzoo show ... --json`` run as a real
subprocess, against networks built here on the CPU, and (for the classic vanilla GAN on MNIST
and DCGAN at 64 px) against arithmetic written out by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ganzoo.api import DataSpec
from ganzoo.errors import ComponentConfigError
from ganzoo.registry import registry
from ganzoo.zoo.conditioning import ConditionalBatchNorm2d
from ganzoo.zoo.dcgan import DCGANDiscriminator, DCGANGenerator
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator

GANZOO = Path(sys.executable).parent / "ganzoo"
N = 4

DCGAN_SPECS = [DataSpec((c, s, s)) for s in (28, 32, 64) for c in (1, 3)]
MLP_SPECS = [DataSpec((1, 28, 28)), DataSpec((3, 32, 32)), DataSpec((2,), (-5.0, 5.0))]
NETWORKS = {
    ("generator", "mlp"): MLPGenerator,
    ("generator", "dcgan"): DCGANGenerator,
    ("discriminator", "mlp"): MLPDiscriminator,
    ("discriminator", "dcgan"): DCGANDiscriminator,
}


def spec_id(spec: DataSpec) -> str:
    return "x".join(map(str, spec.shape))


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def build(cls, spec: DataSpec, **params):
    return cls(cls.Params(**params), spec)


pytestmark = pytest.mark.usefixtures("seed_zero", "one_thread")


@pytest.fixture(scope="module")
def shown_sizes() -> dict[tuple[str, str], list[dict]]:
    """``ganzoo show <kind> <name> --json`` for the four networks, run in parallel."""
    # one thread each: four processes share the cores, and the work is mostly imports
    env = {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    procs = {
        key: subprocess.Popen(
            [str(GANZOO), "show", key[0], key[1], "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for key in NETWORKS
    }
    sizes = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        info = json.loads(out)
        assert (info["kind"], info["name"]) == key
        sizes[key] = info["sizes"]
    return sizes


# --- registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), list(NETWORKS))
def test_entry_points_load_the_classes(kind, name):
    assert registry(kind).load(name) is NETWORKS[kind, name]


def test_dcgan_declares_every_size_and_channel_count():
    for cls in (DCGANGenerator, DCGANDiscriminator):
        assert sorted(s.shape for s in cls.supported_specs) == sorted(s.shape for s in DCGAN_SPECS)
    for cls in (MLPGenerator, MLPDiscriminator):
        assert [s.shape for s in cls.supported_specs] == [s.shape for s in MLP_SPECS]


# --- output shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", DCGAN_SPECS, ids=spec_id)
def test_dcgan_shapes_and_range(spec):
    G = build(DCGANGenerator, spec)
    D = build(DCGANDiscriminator, spec)
    z = G.sample_latent(N)
    assert z.shape == (N, 100)
    x = G(z)
    assert x.shape == (N, *spec.shape)
    assert x.dtype == torch.float32
    assert isinstance(G.net[-1], nn.Tanh)
    assert x.abs().max() <= 1.0
    logits = D(x)
    assert logits.shape == (N,)
    assert torch.isfinite(logits).all()
    # the in-place activations do not break backpropagation
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    assert all(p.grad is not None for p in D.parameters())


@pytest.mark.parametrize("spec", [s for s in DCGAN_SPECS if s.shape[0] == 3], ids=spec_id)
def test_dcgan_without_batch_norm(spec):
    G = build(DCGANGenerator, spec, batch_norm=False, base_channels=8, latent_dim=16)
    D = build(DCGANDiscriminator, spec, batch_norm=False, base_channels=8)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [*G.modules(), *D.modules()])
    # without batch norm every convolution has a bias instead
    assert all(m.bias is not None for m in G.modules() if isinstance(m, nn.ConvTranspose2d))
    assert all(m.bias is not None for m in D.modules() if isinstance(m, nn.Conv2d))
    x = G(G.sample_latent(N))
    assert x.shape == (N, *spec.shape)
    assert D(x).shape == (N,)
    # one sample alone works in training mode (no batch statistics needed)
    assert D(x[:1]).shape == (1,)


def test_dcgan_weights_start_from_the_paper_init():
    G = build(DCGANGenerator, DataSpec((3, 64, 64)))
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    big = convs[0].weight  # 100 x 512 x 4 x 4 values
    assert big.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert big.std().item() == pytest.approx(0.02, rel=0.02)
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms[0].weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all((m.bias == 0).all() for m in norms)


@pytest.mark.parametrize("spec", MLP_SPECS, ids=spec_id)
def test_mlp_shapes(spec):
    G = build(MLPGenerator, spec)
    D = build(MLPDiscriminator, spec)
    x = G(G.sample_latent(N))
    assert x.shape == (N, *spec.shape)
    assert D(x).shape == (N,)


@pytest.mark.parametrize("spec", MLP_SPECS[:2], ids=spec_id)
def test_mlp_generator_images_are_tanh_bounded(spec):
    G = build(MLPGenerator, spec)
    assert isinstance(G.net[-1], nn.Tanh)
    x = G(100.0 * G.sample_latent(N))  # huge pre-activations: saturated, never beyond 1
    assert x.abs().max() <= 1.0
    assert x.abs().max() > 0.99


def test_mlp_generator_points_are_linear_by_default():
    spec = DataSpec((2,), (-5.0, 5.0))
    G = build(MLPGenerator, spec)
    assert isinstance(G.net[-1], nn.Linear)
    x = G(1000.0 * G.sample_latent(64))
    assert x.abs().max() > 5.0  # unbounded: not squashed into [-1, 1]
    # output='tanh' bounds points too
    bounded = build(MLPGenerator, spec, output="tanh")
    assert bounded(1000.0 * bounded.sample_latent(64)).abs().max() <= 1.0


def test_mlp_generator_output_option_overrides_auto():
    G = build(MLPGenerator, DataSpec((1, 28, 28)), output="linear")
    assert isinstance(G.net[-1], nn.Linear)
    assert G(100.0 * G.sample_latent(N)).abs().max() > 1.0


def test_mlp_generator_layers_follow_params():
    G = build(MLPGenerator, DataSpec((2,)), latent_dim=3, hidden=[5, 7], batch_norm=True)
    linears = [m for m in G.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 5), (5, 7), (7, 2)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in G.net) == 2
    assert all(m.negative_slope == 0.2 for m in G.net if isinstance(m, nn.LeakyReLU))
    assert G.latent_dim == 3
    assert G(G.sample_latent(N)).shape == (N, 2)


def test_sample_latent_is_standard_normal_and_seedable():
    G = build(MLPGenerator, DataSpec((2,)), latent_dim=8, hidden=[4])
    a = G.sample_latent(5, generator=torch.Generator().manual_seed(3))
    b = G.sample_latent(5, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 8)
    assert torch.equal(a, b)
    big = G.sample_latent(20_000)
    assert big.mean().item() == pytest.approx(0.0, abs=0.01)
    assert big.std().item() == pytest.approx(1.0, abs=0.01)


def test_seeded_construction_is_deterministic():
    spec = DataSpec((1, 28, 28))
    nets = []
    for _ in range(2):
        torch.manual_seed(42)
        nets.append(build(DCGANGenerator, spec, base_channels=8))
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(p, q)
    z = torch.randn(N, 100)
    nets[0].eval()
    nets[1].eval()
    assert torch.equal(nets[0](z), nets[1](z))


# --- MLP discriminator: dropout and packing -----------------------------------------------------


def test_mlp_discriminator_dropout_only_in_training():
    D = build(MLPDiscriminator, DataSpec((2,)))
    assert sum(isinstance(m, nn.Dropout) for m in D.net) == 3
    x = torch.randn(N, 2)
    assert not torch.equal(D(x), D(x))  # dropout 0.3 is active in training mode
    D.eval()
    assert torch.equal(D(x), D(x))


@pytest.mark.parametrize("pack", [2, 3])
def test_mlp_discriminator_pack(pack):
    spec = DataSpec((1, 28, 28))
    D = build(MLPDiscriminator, spec, pack=pack, hidden=[16])
    assert D.net[0].in_features == pack * 784
    D.eval()
    x = torch.randn(3 * pack, *spec.shape)
    out = D(x)
    assert out.shape == (3,)
    # consecutive samples are judged together: changing sample `pack` moves only logit 1
    y = x.clone()
    y[pack] += 1.0
    changed = D(y) != out
    assert changed.tolist() == [False, True, False]
    # a batch that is not a multiple of pack is refused with a message naming both numbers
    with pytest.raises(ComponentConfigError, match=rf"batch of {3 * pack + 1}.*pack={pack}"):
        D(torch.randn(3 * pack + 1, *spec.shape))


def test_mlp_discriminator_pack_on_points():
    D = build(MLPDiscriminator, DataSpec((2,)), pack=4)
    assert D(torch.randn(8, 2)).shape == (2,)
    with pytest.raises(ComponentConfigError):
        D(torch.randn(6, 2))


# --- DCGAN refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [DataSpec((3, 48, 48)), DataSpec((1, 16, 16)), DataSpec((2,)), DataSpec((1, 28, 32))],
    ids=spec_id,
)
@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
def test_dcgan_refuses_unsupported_data(cls, spec):
    with pytest.raises(ComponentConfigError) as info:
        build(cls, spec)
    message = str(info.value)
    assert "28, 32, 64" in message
    assert str(spec.shape) in message
    assert ("generator" if cls is DCGANGenerator else "discriminator") in message


# --- parameter counts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), list(NETWORKS))
def test_parameter_counts_match_ganzoo_show(shown_sizes, kind, name):
    cls = NETWORKS[kind, name]
    rows = shown_sizes[kind, name]
    assert [tuple(r["data_shape"]) for r in rows] == [s.shape for s in cls.supported_specs]
    for row in rows:
        spec = DataSpec(tuple(row["data_shape"]))
        net = build(cls, spec)
        assert n_params(net) == row["parameters"], row
        with torch.no_grad():
            if kind == "generator":
                out = net(net.sample_latent(2))
                assert row["output_shape"] == ["N", *out.shape[1:]] == ["N", *spec.shape]
            else:
                out = net(torch.zeros(2, *spec.shape))
                assert row["output_shape"] == ["N"]
                assert out.shape == (2,)


def test_vanilla_gan_parameter_counts_on_mnist_by_hand():
    spec = DataSpec((1, 28, 28))
    # G: 100 -> 256 -> 512 -> 1024 -> 784, weights plus biases
    g = (100 * 256 + 256) + (256 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)
    assert g == 1_486_352
    assert n_params(build(MLPGenerator, spec)) == g
    # D: 784 -> 1024 -> 512 -> 256 -> 1
    d = (784 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 256 + 256) + (256 * 1 + 1)
    assert d == 1_460_225
    assert n_params(build(MLPDiscriminator, spec)) == d
    # PacGAN with pack=2 only widens the first layer's input
    assert n_params(build(MLPDiscriminator, spec, pack=2)) == d + 784 * 1024


def test_dcgan_parameter_counts_at_64px_by_hand():
    spec = DataSpec((3, 64, 64))
    # G: 4x4 transposed convolutions 100->512->256->128->64 without bias, batch norm (2 per
    # channel), and a last 64->3 transposed convolution with bias: the PyTorch DCGAN tutorial's
    # 3,576,704 plus the 3 output biases.
    convs = 100 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 3 * 16
    norms = 2 * (512 + 256 + 128 + 64)
    assert n_params(build(DCGANGenerator, spec)) == convs + norms + 3 == 3_576_707
    # D: 3->64 (with bias, no norm), 64->128->256->512 (no bias, batch norm), 512->1 with bias
    convs = 3 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 1 * 16
    norms = 2 * (128 + 256 + 512)
    assert n_params(build(DCGANDiscriminator, spec)) == convs + norms + 64 + 1 == 2_765_633


def _extra_block_sides(G: nn.Module, D: nn.Module, spec: DataSpec) -> tuple[list[int], list[int]]:
    """Sides of the maps that G's and D's stride-1 3x3 convolutions give, in forward order."""
    sides: dict[str, list[int]] = {"G": [], "D": []}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, key=key: sides[key].append(out.shape[-1]))
        for key, net in (("G", G), ("D", D))
        for m in net.modules()
        if type(m) is nn.Conv2d and m.stride == (1, 1) and m.kernel_size == (3, 3)
    ]
    x = G(G.sample_latent(N))
    assert x.shape == (N, *spec.shape)
    assert D(x).shape == (N,)
    for hook in hooks:
        hook.remove()
    return sides["G"], sides["D"]


@pytest.mark.parametrize("spec", DCGAN_SPECS, ids=spec_id)
def test_dcgan_extra_layers_are_stride_one_blocks_at_the_chosen_side(spec):
    half, smallest = spec.shape[1] // 2, 7 if spec.shape[1] == 28 else 4
    G = build(DCGANGenerator, spec, base_channels=8, latent_dim=16, extra_layers=2)
    D = build(DCGANDiscriminator, spec, base_channels=8, extra_layers=2)
    plain_g = build(DCGANGenerator, spec, base_channels=8, latent_dim=16)
    plain_d = build(DCGANDiscriminator, spec, base_channels=8)
    # by default at half the image's side (8 channels there): each block a bias-free 3x3
    # convolution 8 -> 8 and a batch norm (2 per channel)
    assert n_params(G) - n_params(plain_g) == 2 * (8 * 8 * 9 + 2 * 8)
    assert n_params(D) - n_params(plain_d) == 2 * (8 * 8 * 9 + 2 * 8)
    assert _extra_block_sides(G, D, spec) == ([half] * 2, [half] * 2)
    # at the smallest side, where both networks are widest: 8 doubled per size step
    G = build(
        DCGANGenerator, spec, base_channels=8, latent_dim=16, extra_layers=1, extra_side=smallest
    )
    D = build(DCGANDiscriminator, spec, base_channels=8, extra_layers=1, extra_side=smallest)
    width = {28: 16, 32: 32, 64: 64}[spec.shape[1]]
    assert n_params(G) - n_params(plain_g) == width * width * 9 + 2 * width
    assert n_params(D) - n_params(plain_d) == width * width * 9 + 2 * width
    assert _extra_block_sides(G, D, spec) == ([smallest], [smallest])


@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
def test_dcgan_extra_side_must_be_a_hidden_side(cls):
    with pytest.raises(ComponentConfigError, match=r"extra_side = 28 .* choose one of 7, 14"):
        build(cls, DataSpec((1, 28, 28)), extra_layers=1, extra_side=28)


def test_conditional_dcgan_generator_extra_layers_use_conditional_batch_norm():
    spec = DataSpec((1, 28, 28), num_classes=10)
    G = build(DCGANGenerator, spec, conditional=True, extra_layers=1, base_channels=8)
    assert sum(isinstance(m, ConditionalBatchNorm2d) for m in G.modules()) == 3
    y = torch.arange(4)
    x = G(G.sample_latent(4), y)
    assert x.shape == (4, 1, 28, 28)


@pytest.mark.parametrize("latent_std", [1.0, 0.1])
def test_mlp_generator_latent_is_a_scaled_normal_then_a_one_hot_code(latent_std):
    spec = DataSpec((2,), (-1.5, 1.5))
    params = MLPGenerator.Params(latent_dim=2, categories=8, latent_std=latent_std)
    G = MLPGenerator(params, spec)
    assert G.latent_dim == 10
    z = G.sample_latent(20_000, generator=torch.Generator().manual_seed(0))
    gaussian, code = z[:, :2], z[:, 2:]
    assert gaussian.std(0).tolist() == pytest.approx([latent_std] * 2, rel=0.03)
    assert gaussian.mean(0).abs().max() < 0.03 * latent_std
    assert torch.equal(code.sum(1), torch.ones(20_000))  # exactly one category each
    assert set(code.unique().tolist()) == {0.0, 1.0}
    counts = code.sum(0)
    assert counts.min() > 0.9 * 20_000 / 8  # uniform over the categories
    assert G(z).shape == (20_000, 2)

"""SNGAN's ResNet networks, SAGAN's self-attention, and spectral norm in the zoo's networks.

Parameter counts are computed here from the architecture (mimicry's ``sngan_32.py`` /
``sngan_64.py`` and its residual blocks) by formulas written out independently of the code.
Neither the paper nor mimicry states a count, so the 32x32x3 figures are this arithmetic's.
"""

from __future__ import annotations

import textwrap
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, run_cli, shared_data_dir
from PIL import Image
from test_networks import build, n_params, spec_id
from test_train import sets
from torch import nn
from torch.nn.utils import parametrize

from ganzoo.api import DataSpec
from ganzoo.checkpoint import load_checkpoint
from ganzoo.errors import ComponentConfigError
from ganzoo.registry import registry
from ganzoo.testing import check_discriminator
from ganzoo.zoo.attention import SelfAttention2d
from ganzoo.zoo.dcgan import DCGANDiscriminator, DCGANGenerator
from ganzoo.zoo.resnet import SNGANDiscriminator, SNGANGenerator

SPECS = [DataSpec((c, s, s)) for s in (28, 32, 64) for c in (1, 3)]
N = 4
K = 10  # classes

pytestmark = pytest.mark.usefixtures("seed_zero", "one_thread")


def on_meta(cls, spec: DataSpec, **params):
    with torch.device("meta"):
        return build(cls, spec, **params)


# --- parameter counts from the architecture -------------------------------------------------


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out  # weight and bias


def g_block(c_in: int, c_out: int, classes: int = 0) -> int:
    """BN, conv3x3 in->out, BN, conv3x3 out->out, conv1x1 shortcut in->out."""
    # a batch norm's affine scale and shift (2 per channel), or one of each per class
    norms = 2 * (c_in + c_out) * (classes or 1)
    return norms + conv(c_in, c_out, 3) + conv(c_out, c_out, 3) + conv(c_in, c_out, 1)


def g_widths(size: int, b: int) -> tuple[int, list[int]]:
    """Side of the first map, and the widths the blocks go through (mimicry's at 64 px)."""
    return {28: (7, [b] * 3), 32: (4, [b] * 4), 64: (4, [4 * b, 2 * b, b, b // 2, b // 4])}[size]


def g_count(size: int, channels: int, b: int = 256, z: int = 128, classes: int = 0) -> int:
    start, widths = g_widths(size, b)
    linear = z * start**2 * widths[0] + start**2 * widths[0]
    blocks = sum(g_block(i, o, classes) for i, o in pairwise(widths))
    return linear + blocks + 2 * widths[-1] + conv(widths[-1], channels, 3)


def d_first(c_in: int, c_out: int) -> int:
    """The optimised first block: conv3x3 in->out, conv3x3 out->out, conv1x1 in->out."""
    return conv(c_in, c_out, 3) + conv(c_out, c_out, 3) + conv(c_in, c_out, 1)


def d_block(c_in: int, c_out: int, downsample: bool) -> int:
    """conv3x3 in->in, conv3x3 in->out, a conv1x1 shortcut when the shape changes."""
    shortcut = conv(c_in, c_out, 1) if downsample or c_in != c_out else 0
    return conv(c_in, c_in, 3) + conv(c_in, c_out, 3) + shortcut


def d_count(size: int, channels: int, b: int = 128) -> int:
    if size in (28, 32):  # first block and one block downsample, two more keep the side
        trunk = d_first(channels, b) + d_block(b, b, True) + 2 * d_block(b, b, False)
        width = b
    else:  # mimicry's 64 px: 64, 128, 256, 512, 1024 channels, every block downsamples
        widths = [b // 2, b, 2 * b, 4 * b, 8 * b]
        trunk = d_first(channels, widths[0])
        trunk += sum(d_block(i, o, True) for i, o in pairwise(widths))
        width = widths[-1]
    return trunk + width + 1  # the linear layer to one logit


def test_sngan_is_registered_for_both_networks():
    assert registry("generator").load("sngan") is SNGANGenerator
    assert registry("discriminator").load("sngan") is SNGANDiscriminator
    for cls in (SNGANGenerator, SNGANDiscriminator):
        assert sorted(s.shape for s in cls.supported_specs) == sorted(s.shape for s in SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_sngan_parameter_counts_follow_the_architecture(spec):
    size, channels = spec.shape[1], spec.shape[0]
    assert n_params(on_meta(SNGANGenerator, spec)) == g_count(size, channels)
    assert n_params(on_meta(SNGANDiscriminator, spec)) == d_count(size, channels)
    # other widths and latent sizes, and spectral norm, which adds buffers, not parameters
    G = on_meta(SNGANGenerator, spec, base_channels=32, latent_dim=20)
    assert n_params(G) == g_count(size, channels, b=32, z=20)
    for sn in (True, False):
        D = on_meta(SNGANDiscriminator, spec, base_channels=16, spectral_norm=sn)
        assert n_params(D) == d_count(size, channels, b=16)


def test_sngan_cifar_sizes_are_the_paper_models():
    # the paper's CIFAR-10 ResNet as mimicry builds it: G 4,276,739 and D 1,053,825
    # parameters (counted from mimicry's code); its 64 px widths: 12,220,675 and 10,141,441
    rgb32, rgb64 = DataSpec((3, 32, 32)), DataSpec((3, 64, 64))
    assert g_count(32, 3) == n_params(on_meta(SNGANGenerator, rgb32)) == 4_276_739
    assert d_count(32, 3) == n_params(on_meta(SNGANDiscriminator, rgb32)) == 1_053_825
    assert g_count(64, 3) == n_params(on_meta(SNGANGenerator, rgb64)) == 12_220_675
    assert d_count(64, 3) == n_params(on_meta(SNGANDiscriminator, rgb64)) == 10_141_441


def test_sngan_conditional_and_classifier_parameter_counts():
    spec = DataSpec((3, 32, 32), num_classes=K)
    G = on_meta(SNGANGenerator, spec, conditional=True)
    assert n_params(G) == g_count(32, 3, classes=K)
    D = on_meta(SNGANDiscriminator, spec, conditional=True, classifier=True)
    # the projection embedding (K x 128) and the class head (128 -> K, with bias)
    assert n_params(D) == d_count(32, 3) + K * 128 + (128 * K + K)


# --- shapes and behaviour -----------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_sngan_shapes_and_range(spec):
    G = build(SNGANGenerator, spec, base_channels=16, latent_dim=8)
    D = build(SNGANDiscriminator, spec, base_channels=8)
    z = G.sample_latent(N)
    assert z.shape == (N, 8)
    x = G(z)
    assert x.shape == (N, *spec.shape) and x.dtype == torch.float32
    assert x.abs().max() <= 1.0
    logits = D(x)
    assert logits.shape == (N,)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    # each logit depends on its own sample alone (no batch norm in D): judged alone or in a batch
    D.eval()
    with torch.no_grad():
        assert torch.allclose(D(x[:1]), D(x)[:1], atol=1e-5)


def test_sngan_generator_starts_from_the_layout_of_its_size():
    for size, start, blocks in ((28, 7, 2), (32, 4, 3), (64, 4, 4)):
        G = build(SNGANGenerator, DataSpec((1, size, size)), base_channels=8, latent_dim=4)
        assert G.start == start and len(G.blocks) == blocks
        with torch.no_grad():
            first = G.linear(G.sample_latent(2)).view(2, -1, start, start)
        assert first.shape[1] == G.blocks[0].c1.in_channels


def test_sngan_upsamples_by_nearest_neighbour_in_both_paths():
    G = build(SNGANGenerator, DataSpec((1, 32, 32)), base_channels=8, latent_dim=4)
    block = G.blocks[0].eval()
    x = torch.randn(2, 8, 4, 4)
    up = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
    with torch.no_grad():
        h = block.c2(F.relu(block.b2(block.c1(F.relu(block.b1(up))))))
        assert torch.allclose(block(x), h + block.c_sc(up), atol=1e-6)


def test_sngan_discriminator_sums_the_features_it_pools():
    D = build(SNGANDiscriminator, DataSpec((1, 28, 28)), base_channels=8).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        h = x
        for block in D.blocks:
            h = block(h)
        assert h.shape == (3, 8, 7, 7)
        pooled = F.relu(h).sum(dim=(2, 3))  # global sum pooling (not the mean)
        assert torch.allclose(D.features(x), pooled)
        assert torch.allclose(D(x), D.linear(pooled).view(-1), atol=1e-5)


def test_sngan_conditional_generator_uses_its_labels():
    spec = DataSpec((1, 28, 28), num_classes=K)
    G = build(SNGANGenerator, spec, base_channels=8, latent_dim=4, conditional=True)
    assert G.num_classes == K
    with torch.no_grad():
        scale = G.blocks[0].b1.scale.weight
        scale[3] += 0.5  # make class 3 differ clearly from class 0
    G.eval()
    z = G.sample_latent(1).repeat(2, 1)
    with torch.no_grad():
        x = G(z, torch.tensor([0, 3]))
        assert x.shape == (2, *spec.shape)
        assert not torch.allclose(x[0], x[1])
        assert torch.equal(G(z, torch.tensor([3, 3]))[0], x[1])
    with pytest.raises(ComponentConfigError, match="conditional on 10 classes: give y"):
        G(z)


def test_sngan_projection_and_class_head_by_hand():
    spec = DataSpec((3, 32, 32), num_classes=K)
    D = build(SNGANDiscriminator, spec, base_channels=8, conditional=True, classifier=True)
    assert D.num_classes == K and D.classifies
    D.eval()
    x, y = torch.randn(5, 3, 32, 32), torch.tensor([0, 1, 2, 9, 9])
    with torch.no_grad():
        h = D.features(x)
        expected = D.linear(h).view(-1) + (D.projection.weight[y] * h).sum(1)
        assert torch.allclose(D(x, y), expected, atol=1e-5)
        assert D.classify(x).shape == (5, K)
        assert torch.allclose(D.classify(x), D.classes(h))
    with pytest.raises(ComponentConfigError, match="give y"):
        D(x)
    plain = build(SNGANDiscriminator, spec, base_channels=8)
    with pytest.raises(ComponentConfigError, match="has no classifier head"):
        plain.classify(x)


@pytest.mark.parametrize("pack", [2, 4])
def test_sngan_discriminator_packs_samples_along_the_channels(pack):
    spec = DataSpec((3, 32, 32))
    D = build(SNGANDiscriminator, spec, base_channels=8, pack=pack).eval()
    # only the first block reads the packed channels: its two convolutions from the input
    assert n_params(D) == d_count(32, 3, b=8) + (pack - 1) * 3 * (8 * 9 + 8)
    x = torch.randn(3 * pack, *spec.shape)
    with torch.no_grad():
        out = D(x)
        assert out.shape == (3,)
        # pack k is samples k * pack ... k * pack + pack - 1, one after the other in the channels
        stacked = torch.cat([x[pack + i] for i in range(pack)]).unsqueeze(0)
        h = stacked
        for block in D.blocks:
            h = block(h)
        assert torch.allclose(out[1], D.linear(F.relu(h).sum(dim=(2, 3))).view(-1)[0], atol=1e-5)
        y = x.clone()
        y[2 * pack - 1] += 1.0  # the last sample of pack 1 moves its logit alone
        assert (D(y) != out).tolist() == [False, True, False]
    with pytest.raises(ComponentConfigError, match=rf"batch of {3 * pack + 1}.*pack={pack}"):
        D(torch.randn(3 * pack + 1, *spec.shape))
    # the plugin kit's contract, packed: N // pack logits, gradients to every weight and input
    params = SNGANDiscriminator.Params(base_channels=8, pack=pack)
    check_discriminator(SNGANDiscriminator, [DataSpec((1, 28, 28))], params)


@pytest.mark.parametrize("switch", ["conditional", "classifier"])
def test_sngan_label_switches_refuse_packing(switch):
    with pytest.raises(ComponentConfigError, match=f"^{switch} = true needs pack = 1"):
        build(SNGANDiscriminator, DataSpec((1, 28, 28), num_classes=K), pack=2, **{switch: True})


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (SNGANGenerator, {"conditional": True}, "generator.conditional needs labelled data"),
        (SNGANDiscriminator, {"conditional": True}, "discriminator.conditional needs labelled"),
        (SNGANDiscriminator, {"classifier": True}, "discriminator.classifier needs labelled"),
    ],
)
def test_sngan_label_switches_need_labels(cls, params, message):
    with pytest.raises(ComponentConfigError, match=message):
        build(cls, DataSpec((1, 28, 28)), **params)


@pytest.mark.parametrize(
    ("cls", "base", "divisor"), [(SNGANGenerator, 30, 4), (SNGANDiscriminator, 31, 2)]
)
def test_sngan_refuses_widths_that_do_not_divide_at_64_px(cls, base, divisor):
    what = "generator" if cls is SNGANGenerator else "discriminator"
    with pytest.raises(ComponentConfigError) as info:
        build(cls, DataSpec((3, 64, 64)), base_channels=base)
    assert str(info.value) == (
        f"base_channels = {base}: at 64 px the {what}'s narrowest block has base_channels / "
        f"{divisor} channels; give a multiple of {divisor}"
    )
    build(cls, DataSpec((3, 32, 32)), base_channels=base)  # any width at 32 px


@pytest.mark.parametrize("cls", [SNGANGenerator, SNGANDiscriminator])
def test_sngan_refuses_unsupported_data(cls):
    with pytest.raises(ComponentConfigError) as info:
        build(cls, DataSpec((3, 48, 48)))
    assert "needs square images of size 28, 32, 64" in str(info.value)
    assert "(3, 48, 48)" in str(info.value)


# --- spectral norm ------------------------------------------------------------------------


def normalised_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if parametrize.is_parametrized(m, "weight")]


def largest_singular_value(weight: torch.Tensor, transposed: bool) -> float:
    """The spectral norm torch's parametrization bounds: of W as (out, -1)."""
    if transposed:  # a transposed convolution's weight is (in, out, k, k)
        weight = weight.transpose(0, 1)
    matrix = weight.detach().reshape(weight.shape[0], -1)
    return torch.linalg.matrix_norm(matrix, ord=2).item()


def sigmas(net: nn.Module, original: bool = False) -> list[float]:
    values = []
    for m in normalised_layers(net):
        w = m.parametrizations.weight.original if original else m.weight
        values.append(largest_singular_value(w, isinstance(m, nn.ConvTranspose2d)))
    return values


@pytest.mark.parametrize(
    ("G_cls", "D_cls", "g_params", "d_params", "layers"),
    [
        # 10 convolutions, the linear layer, the projection embedding and the class head
        (SNGANGenerator, SNGANDiscriminator, {"base_channels": 32}, {"base_channels": 32}, 13),
        # SAGAN: 4 convolutions, the 4 of the attention block, the embedding and the head
        (
            DCGANGenerator,
            DCGANDiscriminator,
            {"base_channels": 8, "spectral_norm": True, "attention": 8},
            {"base_channels": 8, "spectral_norm": True, "attention": 8},
            10,
        ),
    ],
    ids=["sngan", "sagan"],
)
def test_spectral_norm_bounds_every_layer_after_training(G_cls, D_cls, g_params, d_params, layers):
    spec = DataSpec((3, 32, 32), num_classes=K)
    G = build(G_cls, spec, conditional=True, **g_params)
    D = build(D_cls, spec, conditional=True, classifier=True, **d_params)
    assert len(normalised_layers(D)) == layers
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    for step in range(40):  # hinge loss, 5 D steps per G step, the class head trained too
        real, y = torch.rand(16, 3, 32, 32) * 2 - 1, torch.randint(K, (16,))
        fake = G(G.sample_latent(16), y).detach()
        loss = F.relu(1 - D(real, y)).mean() + F.relu(1 + D(fake, y)).mean()
        loss = loss + F.cross_entropy(D.classify(real), y)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        if step % 5 == 4:
            g_loss = -D(G(G.sample_latent(16), y), y).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
    # torch estimates sigma with one power iteration per training-mode forward; the estimate
    # approaches the largest singular value from below, so a few more iterations settle it
    x, y = torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        for _ in range(200):
            D(x, y)
            D.classify(x)
    normalised = sigmas(D)
    assert max(normalised) <= 1 + 1e-2, normalised
    assert min(normalised) >= 1 - 1e-2, normalised  # normalised to 1, not merely shrunk
    raw = sigmas(D, original=True)
    assert sum(abs(s - 1) > 0.1 for s in raw) >= layers // 2, raw  # the norm's doing
    # the generator's switch (SAGAN's) covers its convolutions, never the class embeddings
    g_layers = normalised_layers(G)
    if G_cls is DCGANGenerator:
        assert len(g_layers) == 4 + 4
        assert all(isinstance(m, nn.ConvTranspose2d | nn.Conv2d) for m in g_layers)
    else:
        assert g_layers == []  # SNGAN's generator has no spectral norm


def test_sngan_spectral_norm_switch():
    spec = DataSpec((3, 32, 32))
    off = build(SNGANDiscriminator, spec, base_channels=8, spectral_norm=False)
    assert normalised_layers(off) == []
    on = build(SNGANDiscriminator, spec, base_channels=8)
    assert len(normalised_layers(on)) == 11
    assert "blocks.0.c1.parametrizations.weight.original" in on.state_dict()


# --- self-attention -----------------------------------------------------------------------


def attention_by_hand(block: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """Zhang et al. (2019), eq. 1-3, one position at a time."""
    n, _, height, width = x.shape
    f, g, h = (layer(x).flatten(2) for layer in (block.f, block.g, block.h))
    o = torch.zeros_like(h)
    for j in range(height * width):
        # s_ij = f(x_i)^T g(x_j) for every position i, per sample
        s = torch.stack([(f[:, :, i] * g[:, :, j]).sum(1) for i in range(height * width)], 1)
        beta = torch.softmax(s, dim=1)  # beta_{j,i}, normalised over the positions i
        o[:, :, j] = (beta[:, None, :] * h).sum(2)
    return x + block.gamma * block.v(o.view(n, -1, height, width))


def test_self_attention_is_the_identity_at_init_and_not_after():
    block = SelfAttention2d(16)
    assert block.gamma.item() == 0.0
    assert [block.f.out_channels, block.g.out_channels, block.h.out_channels] == [2, 2, 2]
    assert block.v.in_channels == 2 and block.v.out_channels == 16
    x = torch.randn(2, 16, 5, 6)
    out = block(x)
    assert out.shape == x.shape
    assert torch.equal(out, x)
    out.sum().backward()
    assert block.gamma.grad is not None and block.gamma.grad.abs() > 0  # gamma can learn
    with torch.no_grad():
        block.gamma.fill_(0.7)
        out = block(x)
        assert not torch.allclose(out, x)
        assert torch.allclose(out, attention_by_hand(block, x), atol=1e-5)


def test_self_attention_spectral_norm_option():
    plain, normed = SelfAttention2d(32), SelfAttention2d(32, spectral_norm=True)
    assert normalised_layers(plain) == []
    assert len(normalised_layers(normed)) == 4
    assert not parametrize.is_parametrized(normed, "gamma")
    assert SelfAttention2d(4).f.out_channels == 1  # narrow maps keep one channel


# --- the DCGAN switches (SAGAN) -----------------------------------------------------------

SIDES = {28: [7, 14], 32: [4, 8, 16]}


@pytest.mark.parametrize(
    ("size", "side"), [(s, side) for s, sides in SIDES.items() for side in sides]
)
@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
def test_dcgan_attention_at_each_side(cls, size, side):
    spec = DataSpec((1, size, size), num_classes=K)
    net = build(cls, spec, base_channels=8, attention=side, conditional=True)
    blocks = [m for m in net.modules() if isinstance(m, SelfAttention2d)]
    assert len(blocks) == 1
    seen = []
    blocks[0].register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].shape))
    y = torch.arange(N) % K
    if cls is DCGANGenerator:
        out = net(net.sample_latent(N), y)
        assert out.shape == (N, *spec.shape)
    else:
        out = net(torch.randn(N, *spec.shape), y)
        assert out.shape == (N,)
    assert seen[0][-2:] == (side, side)
    assert seen[0][1] == blocks[0].v.out_channels  # the block has the map's channels


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
def test_dcgan_refuses_an_attention_side_it_does_not_have(cls, size):
    what = "generator" if cls is DCGANGenerator else "discriminator"
    with pytest.raises(ComponentConfigError) as info:
        build(cls, DataSpec((1, size, size)), attention=5)
    sides = ", ".join(map(str, SIDES[size]))
    assert str(info.value) == (
        f"attention = 5 is not the side of one of the {what}'s hidden feature maps at "
        f"{size} px; choose one of {sides}"
    )


def test_default_dcgan_state_dict_keys_are_unchanged():
    spec = DataSpec((1, 28, 28))
    G, D = build(DCGANGenerator, spec), build(DCGANDiscriminator, spec)
    norm = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert {k: tuple(v.shape) for k, v in G.state_dict().items()} == {
        "net.0.weight": (100, 128, 7, 7),
        **{f"net.1.{k}": (128,) if k != "num_batches_tracked" else () for k in norm},
        "net.3.weight": (128, 64, 4, 4),
        **{f"net.4.{k}": (64,) if k != "num_batches_tracked" else () for k in norm},
        "net.6.weight": (64, 1, 4, 4),
        "net.6.bias": (1,),
    }
    assert {k: tuple(v.shape) for k, v in D.state_dict().items()} == {
        "net.0.weight": (64, 1, 4, 4),
        "net.0.bias": (64,),
        "net.2.weight": (128, 64, 4, 4),
        **{f"net.3.{k}": (128,) if k != "num_batches_tracked" else () for k in norm},
        "net.5.weight": (1, 128, 7, 7),
        "net.5.bias": (1,),
    }
    for net in (G, D):
        assert normalised_layers(net) == []
        assert not any(isinstance(m, SelfAttention2d) for m in net.modules())


def test_dcgan_spectral_norm_adds_no_parameters_and_spares_class_embeddings():
    spec = DataSpec((3, 64, 64), num_classes=K)
    for cls in (DCGANGenerator, DCGANDiscriminator):
        plain = on_meta(cls, spec, conditional=True)
        normed = on_meta(cls, spec, conditional=True, spectral_norm=True)
        assert n_params(plain) == n_params(normed)
    G = build(DCGANGenerator, DataSpec((1, 28, 28), num_classes=K), base_channels=8,
              conditional=True, spectral_norm=True)  # fmt: skip
    assert len(normalised_layers(G)) == 3
    assert not any(isinstance(m, nn.Embedding) for m in normalised_layers(G))


# --- through the CLI ----------------------------------------------------------------------

DCGAN_RECIPE = """\
    schema_version = 1
    name = "tiny_dcgan"

    [generator]
    name = "dcgan"
    base_channels = 8

    [discriminator]
    name = "dcgan"
    base_channels = 8

    [loss]
    name = "hinge"

    [data]
    name = "mnist"
    split = "test"
"""


def test_validate_names_the_attention_field_and_its_sides(tmp_path):
    recipe = tmp_path / "tiny_dcgan.toml"
    recipe.write_text(textwrap.dedent(DCGAN_RECIPE))
    done = run_cli("validate", str(recipe), *sets("generator.attention=5"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"{recipe}: generator: dcgan: attention = 5 is not the side of one of the generator's "
        "hidden feature maps at 28 px; choose one of 7, 14"
    )
    assert "Traceback" not in done.stderr
    good = run_cli(
        "validate", str(recipe), *sets("generator.attention=14", "discriminator.attention=7",
                                       "generator.spectral_norm=true"),
    )  # fmt: skip
    assert good.returncode == 0, good.stderr


def test_an_extra_layers_count_past_the_bound_is_refused_before_building(tmp_path):
    recipe = tmp_path / "tiny_dcgan.toml"
    recipe.write_text(textwrap.dedent(DCGAN_RECIPE))
    done = run_cli("validate", str(recipe), *sets("discriminator.extra_layers=1000000"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"{recipe} (--set discriminator.extra_layers=1000000): discriminator.extra_layers: "
        "Input should be less than or equal to 32"
    )
    good = run_cli("validate", str(recipe), *sets("discriminator.extra_layers=32"))
    assert good.returncode == 0, good.stderr


SNGAN_RECIPE = """\
    schema_version = 1
    name = "tiny_sngan"
    seed = 0

    [generator]
    name = "sngan"
    base_channels = 16
    latent_dim = 16

    [discriminator]
    name = "sngan"
    base_channels = 16

    [loss]
    name = "hinge"

    [data]
    name = "mnist"
    split = "test"

    [train]
    steps = 4
    d_steps = 2
    batch_size = 16
    log_every = 2
    sample_every = 4
    checkpoint_every = 4
    num_samples = 4

    [train.generator_optimizer]
    betas = [0.0, 0.9]

    [train.discriminator_optimizer]
    betas = [0.0, 0.9]

    [eval]
    metrics = []
"""


def test_sngan_recipe_runs_on_mnist_through_the_cli(tmp_path):
    data = shared_data_dir()
    if data is None:
        pytest.skip("this run reads MNIST's test split from ../shared/data")
    recipe = tmp_path / "tiny_sngan.toml"
    recipe.write_text(textwrap.dedent(SNGAN_RECIPE))
    out = tmp_path / "run"
    env = {"GANZOO_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    done = run_cli("run", str(recipe), "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(Path(out) / "checkpoints" / "last.pt")
    assert state["step"] == 4
    D = build(SNGANDiscriminator, DataSpec((1, 28, 28)), base_channels=16)
    D.load_state_dict(state["discriminator"])  # spectral norm's u and v travel with it
    assert "blocks.0.c1.parametrizations.weight.0._u" in state["discriminator"]
    G = build(SNGANGenerator, DataSpec((1, 28, 28)), base_channels=16, latent_dim=16)
    G.load_state_dict(state["generator"])
    assert (out / "samples" / "step_00000004.png").is_file()


def test_sngan_cifar10_trains_two_steps_on_a_generated_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    for i in range(16):
        pixels = torch.randint(0, 256, (32, 32, 3), generator=rng, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(folder / f"{i:02d}.png")
    text = (REPO / "recipes" / "sngan_cifar10.toml").read_text()
    cifar = '[data]\nname = "cifar10"\nsplit = "train"\n'
    assert cifar in text
    images = f'[data]\nname = "image-folder"\npath = "{folder}"\nsize = 32\nchannels = 3\n'
    recipe = tmp_path / "sngan_folder.toml"
    recipe.write_text(text.replace(cifar, images))
    out = tmp_path / "run"
    result = run_cli(
        "run", str(recipe), "--out", str(out), "--progress", "none",
        *sets("train.steps=2", "train.batch_size=2", "train.num_samples=4", "eval.metrics=[]"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert state["discriminator_optimizer"]["param_groups"][0]["betas"] == (0.0, 0.9)
    resolved = (out / "resolved.toml").read_text()
    assert "d_steps = 5" in resolved and 'name = "sngan"' in resolved
    # five discriminator updates per generator update: Adam's step count says so
    d_steps = {int(s["step"]) for s in state["discriminator_optimizer"]["state"].values()}
    g_steps = {int(s["step"]) for s in state["generator_optimizer"]["state"].values()}
    assert d_steps == {10} and g_steps == {2}


def test_sagan_fashion_mnist_trains_two_steps_with_its_two_learning_rates(tmp_path):
    data = shared_data_dir()
    if data is None:
        pytest.skip("this run reads Fashion-MNIST from ../shared/data")
    out = tmp_path / "run"
    env = {"GANZOO_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    done = run_cli(
        "run", "sagan_fashion_mnist", "--out", str(out), "--progress", "none",
        *sets("train.steps=2", "train.batch_size=4", "train.num_samples=4", "eval.metrics=[]",
              "data.split=test"),  # the test split: 10,000 images to read instead of 60,000
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 2
    g_group = state["generator_optimizer"]["param_groups"][0]
    d_group = state["discriminator_optimizer"]["param_groups"][0]
    assert (g_group["lr"], d_group["lr"]) == (1e-4, 4e-4)
    assert g_group["betas"] == d_group["betas"] == (0.0, 0.9)
    for role in ("generator", "discriminator"):
        weights = state[role]
        # self-attention on the 32 channels of the 14x14 maps, f and g down to C/8 = 4
        (f,) = (
            value
            for key, value in weights.items()
            if key.endswith("f.parametrizations.weight.original")
        )
        assert f.shape == (4, 32, 1, 1), role
        assert sum(key.endswith(".gamma") for key in weights) == 1, role
        # spectral norm on every convolution: no plain conv weights are left
        assert not [k for k, v in weights.items() if k.endswith(".weight") and v.dim() == 4], role


@pytest.mark.parametrize("name", ["sngan_mnist", "sngan_fashion_mnist"])
def test_the_28px_sngan_recipes_train_as_their_headers_say(name, tmp_path):
    data = shared_data_dir()
    if data is None:
        pytest.skip("this run reads MNIST and Fashion-MNIST from ../shared/data")
    text = (REPO / "recipes" / f"{name}.toml").read_text()
    out = tmp_path / "run"
    env = {"GANZOO_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    done = run_cli(
        "run", name, "--out", str(out), "--progress", "none",
        *sets("train.steps=2", "train.batch_size=4", "train.num_samples=4", "eval.metrics=[]",
              "data.split=test"),
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    # the parameter counts the header states, spectral norm's u and v buffers left out
    counts = {
        role: sum(
            v.numel()
            for k, v in state[role].items()
            if not k.endswith(("_u", "_v", "running_mean", "running_var", "num_batches_tracked"))
        )
        for role in ("generator", "discriminator")
    }
    assert f"G {counts['generator']:,} parameters and D {counts['discriminator']:,}" in text
    assert "blocks.0.c1.parametrizations.weight.0._u" in state["discriminator"]
    assert state["ema"] is not None
    # 5 D updates per G update, lr 2e-4 decayed linearly: half of it after step 1 of 2
    d_steps = {int(s["step"]) for s in state["discriminator_optimizer"]["state"].values()}
    assert d_steps == {10}
    for role in ("generator", "discriminator"):
        group = state[f"{role}_optimizer"]["param_groups"][0]
        assert (group["lr"], group["betas"]) == (1e-4, (0.0, 0.9)), role
    assert "channels_last = true" in (out / "resolved.toml").read_text()

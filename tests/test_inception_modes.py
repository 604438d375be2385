"""The Inception extractor's resize modes, precision and fast path: clean-fid parity, protocols."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_evaluate import random_inception  # noqa: F401 (a fixture, shared with that module)
from torchvision.models.inception import BasicConv2d

import ganzoo.device
from ganzoo.api import ExtractorRequest, to_model_space
from ganzoo.errors import UsageError
from ganzoo.metrics.fid_inception import fold_batch_norms
from ganzoo.metrics.inception import InceptionExtractor
from ganzoo.metrics.resize import clean_input, pil_bicubic

cleanfid_resize = pytest.importorskip("cleanfid.resize")


def clean_fid_resized(pixels: np.ndarray) -> np.ndarray:
    """clean-fid's clean-mode resize of uint8 images (N, H, W) or (N, H, W, 3) -> (N, 3, 299, 299).

    As clean-fid reads a file: PIL ``convert("RGB")`` (grey repeated), then its own resizer.
    """
    resize = cleanfid_resize.make_resizer("PIL", False, "bicubic", (299, 299))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its Image.fromarray(mode="F")
        out = [resize(np.asarray(Image.fromarray(p).convert("RGB"))) for p in pixels]
    return np.stack(out).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("shape", [(4, 28, 28), (4, 32, 32, 3)], ids=["grey28", "rgb32"])
def test_clean_resize_equals_clean_fid(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expected = clean_fid_resized(pixels)
    images = torch.from_numpy(pixels)
    images = images[:, None] if images.dim() == 3 else images.permute(0, 3, 1, 2)
    channels = images.shape[1]
    resized = pil_bicubic(images.numpy().astype(np.float32))
    assert resized.shape == (4, channels, 299, 299)
    np.testing.assert_allclose(resized, expected[:, :channels], rtol=0, atol=1e-6)
    network_input = clean_input(to_model_space(images))
    torch.testing.assert_close(
        network_input, torch.from_numpy(expected).sub(128).div(128), rtol=0, atol=1e-6
    )


def test_clean_resize_on_threads_equals_one_thread():
    pixels = np.random.default_rng(1).uniform(0, 255, (5, 3, 20, 24)).astype(np.float32)
    alone = pil_bicubic(pixels, workers=1)
    assert np.array_equal(pil_bicubic(pixels, workers=2), alone)  # chunks of 3 and 2
    assert np.array_equal(pil_bicubic(pixels[3:], workers=1), alone[3:])


def test_folding_batch_norm_keeps_the_outputs():
    torch.manual_seed(0)
    block = BasicConv2d(3, 8, kernel_size=3).eval()
    block.bn.running_mean.uniform_(-1, 1)
    block.bn.running_var.uniform_(0.5, 2)
    block.bn.weight.data.uniform_(0.5, 2)
    block.bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        expected = block(x)
        fold_batch_norms(block)
        got = block(x)
    assert isinstance(block.bn, torch.nn.Identity) and block.conv.bias is not None
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_clean_and_bilinear_modes_differ(random_inception):  # noqa: F811
    request = ExtractorRequest("", torch.device("cpu"), weights=random_inception)
    extractors = {
        mode: InceptionExtractor.build(InceptionExtractor.Params(resize=mode), request)
        for mode in ("bilinear", "clean")
    }
    pixels = torch.randint(0, 256, (1, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    images = to_model_space(pixels.to(torch.uint8))
    bilinear, clean = (extractors[mode](images)[0] for mode in ("bilinear", "clean"))
    assert bilinear.abs().mean() > 0.1
    assert (clean - bilinear).abs().max() > 1e-2
    protocols = {mode: e.protocol() for mode, e in extractors.items()}
    assert protocols["bilinear"]["resize"] != protocols["clean"]["resize"]
    assert protocols["bilinear"]["input_range"] != protocols["clean"]["input_range"]
    assert protocols["bilinear"]["precision"] == protocols["clean"]["precision"] == "float32"


def test_bfloat16_is_refused_on_a_cpu_without_native_bf16(random_inception, monkeypatch):  # noqa: F811
    monkeypatch.setattr(ganzoo.device, "cpu_has_native_bf16", lambda: False)
    request = ExtractorRequest("", torch.device("cpu"), weights=random_inception)
    with pytest.raises(UsageError, match="native bf16"):
        InceptionExtractor.build(InceptionExtractor.Params(precision="bfloat16"), request)


def test_bfloat16_features_are_close_to_float32(random_inception):  # noqa: F811
    fp32 = InceptionExtractor(random_inception)
    bf16 = InceptionExtractor(random_inception, precision="bfloat16")
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pool32, _ = fp32(images)
    pool16, logits16 = bf16(images)
    assert pool16.dtype == logits16.dtype == torch.float32
    assert 0 < (pool16 - pool32).abs().max() < 0.05 * pool32.abs().max()
    torch.testing.assert_close(logits16, pool16 @ fp32.net.fc.weight.T)
    assert bf16.protocol()["precision"].startswith("bfloat16")
    assert bf16.protocol()["weights_sha256"] == fp32.protocol()["weights_sha256"]

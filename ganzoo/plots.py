"""Pictures of a run: sample grids, 2-D scatter plots over the real mixture, loss curves.

Each picture is written whole through :mod:`ganzoo.writes`: a failed write raises
:class:`~ganzoo.errors.WriteError` and leaves no partial file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo.api import DataSpec, from_model_space
from ganzoo.writes import write_file


def _save_picture(picture: Any, path: Path) -> None:
    """Save a PIL image in the format its file name says (PNG when it says none PIL knows)."""
    from PIL import Image

    kind = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    write_file(path, lambda f: picture.save(f, format=kind))


def _save_figure(fig: Any, plt: Any, path: Path) -> None:
    """Save a matplotlib figure in the format its file name says (PNG by default), close it."""
    try:
        write_file(path, lambda f: fig.savefig(f, format=path.suffix[1:].lower() or "png"))
    finally:
        plt.close(fig)


def tile(images: Tensor, columns: int, gap: int = 2) -> Tensor:
    """Images (N, C, H, W) as one (C, H', W') grid, row by row, ``gap`` zero pixels around each.

    The layout of torchvision's ``make_grid(images, nrow=columns, padding=gap)``, channels
    kept as they are (``make_grid`` makes one channel three); a single image comes back as it
    is, without gaps, as there. Done here so that writing samples does not import torchvision
    (and with it torch._dynamo, about 2 s of CPU).
    """
    n, channels, height, width = images.shape
    if n == 1:
        return images[0]
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    grid = images.new_zeros((channels, rows * (height + gap) + gap, columns * (width + gap) + gap))
    for k, image in enumerate(images):
        top = gap + k // columns * (height + gap)
        left = gap + k % columns * (width + gap)
        grid[:, top : top + height, left : left + width] = image
    return grid


def _picture(images: Tensor, columns: int) -> Any:
    """Model-space images (N, C, H, W) in [-1, 1] as one PIL grid with 2 px gaps."""
    from PIL import Image

    array = tile(from_model_space(images.cpu()), columns).permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if images.shape[1] == 1 else array)


def save_image_grid(images: Tensor, path: Path, nrow: int | None = None) -> None:
    """Save model-space images (N, C, H, W) in [-1, 1] as one PNG grid with 2 px gaps."""
    _save_picture(_picture(images, nrow or math.ceil(math.sqrt(images.shape[0]))), path)


def save_class_grid(images: Tensor, path: Path, columns: int, row_labels: Sequence[str]) -> None:
    """Save a grid of one row per class (``columns`` images each), its label at the left."""
    from PIL import Image, ImageDraw, ImageFont

    grey = images.shape[1] == 1
    picture = _picture(images, columns)
    font = ImageFont.load_default()
    margin = 6 + max(int(font.getlength(label)) for label in row_labels)
    canvas = Image.new(picture.mode, (picture.width + margin, picture.height), 0)
    canvas.paste(picture, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row_height = images.shape[2] + 2
    ink = 255 if grey else (255, 255, 255)
    for row, label in enumerate(row_labels):
        draw.text((2, 2 + row * row_height + row_height // 2 - 6), label, fill=ink, font=font)
    _save_picture(canvas, path)


def class_labels(spec: DataSpec) -> list[str]:
    """A label for each class: its name when the dataset knows it, else its index."""
    names = spec.class_names
    return [names[i] if i < len(names) else str(i) for i in range(spec.num_classes)]


def _figure(size: tuple[float, float] = (5.0, 5.0)) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=size, dpi=100), plt


def save_scatter(
    points: Tensor, spec: DataSpec, path: Path, real: Tensor | None = None, title: str = ""
) -> None:
    """Scatter 2-D samples over the real mixture's means (or real points) and save a PNG."""
    fig, plt = _figure()
    ax = fig.add_subplot(1, 1, 1)
    if real is not None:
        r = real[:2000].cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=4, c="#bbbbbb", label="real", linewidths=0)
    p = points.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=4, c="#1f77b4", label="generated", linewidths=0)
    if spec.mixture is not None:
        means = torch.tensor(spec.mixture.means).numpy()
        ax.scatter(means[:, 0], means[:, 1], s=30, marker="x", c="#d62728", label="modes")
    low, high = spec.value_range
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=2)
    ax.set_title(title, fontsize=9)
    _save_figure(fig, plt, path)


def save_samples(samples: Tensor, spec: DataSpec, path: Path, real: Tensor | None = None) -> None:
    """Save samples as an image grid, or as a scatter plot for 2-D points."""
    if spec.is_image:
        save_image_grid(samples, path)
    elif spec.shape == (2,):
        save_scatter(samples, spec, path, real=real, title=path.stem)
    else:
        raise ValueError(f"cannot picture samples of shape {spec.shape}")


def save_loss_curves(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Plot every loss-like series of ``metrics.jsonl`` records against the step."""
    keys = [k for k in ("d_loss", "g_loss") if any(k in r for r in records)]
    extra = sorted({k for r in records for k in r} - {"step", "time", "images_per_s", *keys})
    fig, plt = _figure((8.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for key in keys + extra:
        rows = [(r["step"], r[key]) for r in records if key in r]
        ax.plot([s for s, _ in rows], [v for _, v in rows], label=key, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("value (mean over the logging window)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, plt, path)


def save_leaderboard_plot(
    panels: dict[str, dict[str, list[float]]], better: dict[str, str], path: Path
) -> None:
    """A panel per score: a dot per run, each recipe's mean and standard deviation as a bar.

    ``panels`` maps each score to its values by recipe; ``better`` says which direction
    of a score is better, for the panel's title.
    """
    import statistics

    recipes = list(dict.fromkeys(name for values in panels.values() for name in values))
    width = max(4.0, 1.2 * len(recipes) + 1.5)
    fig, plt = _figure((width * len(panels), 4.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (score, by_recipe) in zip(axes, panels.items(), strict=True):
        for x, name in enumerate(recipes):
            values = by_recipe.get(name, [])
            if not values:
                continue
            offsets = [(i - (len(values) - 1) / 2) * 0.06 for i in range(len(values))]
            ax.scatter([x + o for o in offsets], values, s=18, alpha=0.7, zorder=3)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            ax.errorbar(x, statistics.fmean(values), yerr=spread, fmt="_", color="black",
                        markersize=22, capsize=6, zorder=4)  # fmt: skip
        ax.set_title(f"{score} ({better[score]} is better)" if score in better else score)
        ax.set_xticks(range(len(recipes)), recipes, rotation=20, ha="right")
        ax.set_xlim(-0.5, len(recipes) - 0.5)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, plt, path)

"""A folder of image files as a dataset: resized, centre-cropped, optionally labelled."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from ganzoo.api import Dataset, DataSpec, Params
from ganzoo.errors import ComponentConfigError, DataError


class ImageFolder(Dataset):
    """Any folder of images, resized and centre-cropped to a square, streamed from disk.

    With ``num_classes``, the first-level sub-folders are the classes (sorted by name, as
    torchvision's ImageFolder sorts them) and each image is labelled with its folder's index.
    """

    class Params(Params):
        """Parameters of an image folder."""

        path: str = Field(
            description="The folder; a relative path is looked up in the data folder first, "
            "then in the working directory."
        )
        size: int = Field(64, ge=4, description="Side of the square images, in pixels.")
        channels: Literal[1, 3] = Field(3, description="1 for grey, 3 for RGB.")
        extensions: list[str] = Field(
            [".png", ".jpg", ".jpeg", ".bmp", ".webp"],
            min_length=1,
            description="File name endings to include (case-insensitive).",
        )
        recursive: bool = Field(True, description="Include images in sub-folders.")
        in_memory: bool = Field(
            False, description="Decode every image once and keep the set in memory."
        )
        skip_unreadable: bool = Field(
            False,
            description="Decode every file once at the start and leave out those that are not "
            "readable images, with a warning that counts them; false: such a file stops the "
            "run with one line naming it.",
        )
        num_classes: int = Field(
            0,
            ge=0,
            description="Label the images by class sub-folder: the number of first-level "
            "sub-folders, one per class (sorted by name); 0: unlabelled.",
        )

    def __init__(self, params: Params, data_dir: Path, download: bool = False) -> None:
        super().__init__(params, data_dir, download)
        self.root = self._find_root()
        endings = tuple(e.lower() for e in params.extensions)
        self.class_names: tuple[str, ...] = ()
        if params.num_classes:
            self.files, self._labels = self._class_files(endings)
        else:
            self.files, self._labels = self._images_in(self.root, endings), None
        if not self.files:
            raise DataError(
                f"{self.root}: no images ending in {', '.join(endings)}"
                + (" (sub-folders included)" if params.recursive else "")
            )
        self._cache: Tensor | None = None
        if params.skip_unreadable:
            self._leave_out_unreadable()

    def _leave_out_unreadable(self) -> None:
        """Decode every file once; drop those that fail, with a warning that counts them."""
        keep, errors = [], []
        for index in range(len(self.files)):
            try:
                self[index]
            except DataError as exc:
                errors.append(str(exc))
            else:
                keep.append(index)
        if not errors:
            return
        if not keep:
            raise DataError(f"{self.root}: none of the {len(self.files):,} images is readable")
        warnings.warn(
            f"{self.root}: skipped {len(errors):,} unreadable of {len(self.files):,} images "
            f"(data.skip_unreadable); the first: {errors[0]}",
            stacklevel=2,
        )
        self.files = [self.files[i] for i in keep]
        if self._labels is not None:
            self._labels = self._labels[keep]

    def _images_in(self, folder: Path, endings: tuple[str, ...]) -> list[Path]:
        pattern = "**/*" if self.params.recursive else "*"
        return sorted(
            p for p in folder.glob(pattern) if p.is_file() and p.name.lower().endswith(endings)
        )

    def _class_files(self, endings: tuple[str, ...]) -> tuple[list[Path], Tensor]:
        """The images of each class sub-folder and their labels; the folders must match."""
        folders = sorted(d for d in self.root.iterdir() if d.is_dir())
        expected = self.params.num_classes
        if len(folders) != expected:
            names = ", ".join(d.name for d in folders) or "none"
            raise ComponentConfigError(
                f"{self.root}: data.num_classes = {expected}, but the folder has "
                f"{len(folders)} class sub-folders ({names})"
            )
        files: list[Path] = []
        labels: list[int] = []
        for index, folder in enumerate(folders):
            found = self._images_in(folder, endings)
            if not found:
                raise DataError(f"{folder}: a class sub-folder without images")
            files += found
            labels += [index] * len(found)
        self.class_names = tuple(d.name for d in folders)
        return files, torch.tensor(labels, dtype=torch.long)

    def _find_root(self) -> Path:
        given = Path(self.params.path).expanduser()
        candidates = [given] if given.is_absolute() else [self.data_dir / given, Path.cwd() / given]
        for candidate in candidates:
            if candidate.is_dir():
                return candidate
        raise DataError(
            f"image folder {self.params.path!r} not found (looked in "
            f"{', '.join(str(c) for c in candidates)})"
        )

    @classmethod
    def spec_for(cls, params: Params) -> DataSpec:
        """Square images of the chosen size and channels in [-1, 1], with ``num_classes``."""
        shape = (params.channels, params.size, params.size)
        return DataSpec(shape, num_classes=params.num_classes)

    @property
    def spec(self) -> DataSpec:
        """The spec, with the class sub-folders' names as class names."""
        return replace(self.spec_for(self.params), class_names=self.class_names)

    def labels(self) -> Tensor | None:
        """The class index of each image (by sub-folder), or None when unlabelled."""
        return self._labels

    def __len__(self) -> int:
        """The number of image files."""
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        """Decode, resize and centre-crop one image to uint8 (C, size, size)."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as image:
                image = image.convert("L" if self.params.channels == 1 else "RGB")
                size = (self.params.size, self.params.size)
                fitted = ImageOps.fit(image, size, method=Image.Resampling.BICUBIC)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"{path}: cannot read image: {exc}") from exc
        array = np.asarray(fitted, dtype=np.uint8)
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def tensor(self) -> Tensor | None:
        """Every image decoded, uint8 (N, C, size, size), when ``in_memory``; else None."""
        if not self.params.in_memory:
            return None
        if self._cache is None:
            self._cache = torch.stack([self[i] for i in range(len(self))])
        return self._cache

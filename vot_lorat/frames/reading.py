"""Reading frames as RGB arrays or tensors, finding the frames of a folder in order, handing frames to torch."""
from __future__ import annotations

import logging
import os
import re
from typing import List, Optional, Union

import cv2
import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # what OpenCV reads
Frame = Union[np.ndarray, torch.Tensor]  # (H, W, 3) uint8 RGB, a tensor on any device
JPEG_EXTENSIONS = (".jpg", ".jpeg")
_JPEG_TAIL = 32  # bytes at the end of a JPEG searched for its end marker
_EXIF_HEADER = b"Exif\x00\x00"  # the APP1 segment that can hold an orientation tag
_EXIF_SEARCH = 65536  # bytes at the start of a JPEG searched for it (an APP1 segment is at most 64 KB)


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; raises OSError naming the file when it is missing or cannot be decoded. A JPEG cut
    short (a copy or download that stopped) still decodes, grey where the data ends: that is logged."""
    if not os.path.isfile(path):  # before OpenCV, which would print a warning of its own
        raise OSError(f"cannot read image {path}: no such file")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(max(0, os.fstat(f.fileno()).st_size - _JPEG_TAIL))
        tail = f.read()
    if _ends_early(head, tail):
        log.warning("image %s is truncated (its JPEG data stops before the end marker): the rest of the frame is "
                    "decoded grey", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _ends_early(head: bytes, tail: bytes) -> bool:
    """A JPEG (start marker FFD8) whose last bytes hold no end marker (FFD9): the file was cut short. Some
    writers pad after the end marker, hence a look at the last few bytes rather than the last two."""
    return head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail


def natural_key(name: str) -> list:
    """Sort key that puts ``frame2`` before ``frame10`` and ``airplane-2`` before ``airplane-10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frames(folder: str) -> List[str]:
    """Image file names of a folder (``IMAGE_EXTENSIONS``, any case) in natural order."""
    return sorted((f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS)), key=natural_key)


def read_frame(path: str, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """(H, W, 3) uint8 RGB tensor on ``device`` with :func:`read_rgb`'s pixels; raises OSError naming the file.

    JPEGs are decoded by torchvision's libjpeg-turbo, which gives OpenCV's pixels faster than ``cv2.imread``, and
    on a CUDA device by nvJPEG on the GPU, where the frame then stays (nvJPEG's pixels are not libjpeg-turbo's:
    benchmarks/gpu_check.sh compares them).
    What torchvision cannot decode as OpenCV does (CMYK, damaged files, EXIF rotation on the GPU) and the
    other formats go through :func:`read_rgb`.
    """
    if path.lower().endswith(JPEG_EXTENSIONS):
        image = _decode_jpeg(path, device)
        if image is not None:
            return image
    return frame_tensor(read_rgb(path), device)


def _jpeg_bytes(path: str) -> Optional[np.ndarray]:
    """The bytes of a JPEG file, or None where :func:`read_rgb` must read it: a file that cannot be read (it
    reports it) or one cut short (OpenCV decodes what is there, and read_rgb says so)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    return None if _ends_early(bytes(data[:2]), bytes(data[-_JPEG_TAIL:])) else data


def _has_exif(data: np.ndarray) -> bool:
    """Whether a JPEG has an EXIF segment, whose orientation tag cv2.imread applies."""
    return bytes(data[:_EXIF_SEARCH]).find(_EXIF_HEADER) >= 0


def _decode_jpeg(path: str, device: torch.device) -> Optional[torch.Tensor]:
    """The JPEG decoded by torchvision, or None where :func:`read_frame` leaves it to OpenCV."""
    data = _jpeg_bytes(path)
    if data is None:
        return None
    on_gpu = device.type == "cuda" and not _has_exif(data)
    data = torch.from_numpy(data)
    try:
        if on_gpu:  # nvJPEG converts to RGB itself
            image = decode_jpeg(data, ImageReadMode.RGB, device=device)
        else:  # as decoded, to tell CMYK files apart; cv2.imread applies the EXIF orientation, nvJPEG cannot
            image = decode_jpeg(data, ImageReadMode.UNCHANGED, apply_exif_orientation=True)
    except RuntimeError:
        return None  # damaged: OpenCV decodes what it can
    if image.shape[0] == 1:  # greyscale: OpenCV repeats it into three channels
        image = image.expand(3, -1, -1)
    elif image.shape[0] != 3:  # CMYK: OpenCV's colour conversion differs from libjpeg's by 1
        return None
    return image.permute(1, 2, 0).to(device).contiguous()  # torchvision decodes HWC on the CPU: no copy


def frame_tensor(image: Frame, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB numpy array or tensor -> contiguous tensor on ``device`` (no copy where it is one)."""
    uint8 = image.dtype == (torch.uint8 if isinstance(image, torch.Tensor) else np.uint8)
    if image.ndim != 3 or image.shape[2] != 3 or not uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {tuple(image.shape)}")
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    return image.to(device, non_blocking=True).contiguous()


def frame_array(image: Frame) -> np.ndarray:
    """The frame as an (H, W, 3) uint8 numpy array, for OpenCV and numpy code (a view of a CPU tensor)."""
    return image.cpu().numpy() if isinstance(image, torch.Tensor) else image


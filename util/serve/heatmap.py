"""An occlusion map drawn over the image the user sent, as a PNG."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from util.serve.crop import crop_to_content
from util.serve.image import Preprocessing, decode, resize, to_mode

LONG_SIDE = (256, 512)  # the overlay's longest side: small images are enlarged, large ones reduced
OPACITY = 0.7  # of the strongest cell; weaker cells are more transparent


def model_view(data: bytes, shape: tuple[int, int, int], p: Preprocessing, max_pixels: int) -> Image.Image:
    """The user's image in colour, cut as the model saw it (cropped or padded the same way), at display size."""
    image = to_mode(decode(data, max_pixels, target=(LONG_SIDE[1], LONG_SIDE[1])), 3)
    height, width = shape[:2]
    if p.crop == "content":
        # Cut in colour: for a coloured picture the box can differ by a fringe pixel from the model's grey one.
        image = crop_to_content(image, (width, height), p.crop_margin)
    if p.resize == "stretch":
        # Stretching maps the grid onto the whole image, so the photo keeps its own proportions.
        width, height = image.size
    side = min(LONG_SIDE[1], max(LONG_SIDE[0], max(image.size)))
    ratio = side / max(width, height)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return image.resize(size, Image.Resampling.BILINEAR) if p.resize == "stretch" else resize(image, size, p.resize,
                                                                                              "bilinear")


def colours(drops: np.ndarray) -> np.ndarray:
    """RGBA (H, W, 4) uint8: where the label loses, red to yellow; where it gains, blue; alpha by strength."""
    peak = float(np.abs(drops).max())
    # The square root lifts the middle: one strong cell would otherwise leave the rest invisible.
    v = np.sign(drops) * np.sqrt(np.abs(drops) / peak) if peak > 0 else np.zeros_like(drops)
    loss, gain = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    rgba = np.zeros((*drops.shape, 4), dtype=np.float32)
    rgba[..., 0] = 255 * (loss > 0) + 40 * (gain > 0)
    rgba[..., 1] = 220 * loss**2 + 110 * (gain > 0)  # the strongest losses turn yellow
    rgba[..., 2] = 255 * (gain > 0)
    rgba[..., 3] = 255 * OPACITY * np.maximum(loss, gain)
    return np.clip(rgba, 0, 255).astype(np.uint8)


def overlay_png(data: bytes, drops: np.ndarray, shape: tuple[int, int, int], p: Preprocessing,
                max_pixels: int) -> bytes:
    """The heat map of `drops` (rows, cols), smoothly enlarged, over the model's view of `data`."""
    view = model_view(data, shape, p, max_pixels).convert("RGBA")
    heat = np.asarray(Image.fromarray(drops.astype(np.float32), "F").resize(view.size, Image.Resampling.BILINEAR))
    out = Image.alpha_composite(view, Image.fromarray(colours(heat), "RGBA")).convert("RGB")
    buffer = io.BytesIO()
    out.save(buffer, format="PNG", compress_level=1)  # fast: the PNG is made per request and sent once
    return buffer.getvalue()

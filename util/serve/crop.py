"""`preprocessing.crop: content`: cut a picture down to what is drawn on it, as MNIST-style data was made.

A digit drawn small in a corner of a large canvas, or photographed on a sheet of paper, fills
a sliver of the model's input once resized; models trained on digits cropped to their ink
(MNIST, scikit-learn's optdigits) then answer unsure or wrong. This step:

1. takes the background colour from the image's border (the median of the outermost pixels);
2. counts a pixel as ink where it differs from that colour by more than a threshold;
3. crops to the ink's bounding box plus a margin (a share of the box's longer side);
4. pads that box, centred, to the model's aspect ratio with the background colour.

Centring is by the bounding box, not the centre of mass: the default model's training data
(optdigits, via NIST's normaliser) is centred by its box, and a box moves only when a stroke
reaches past it, so a drawing does not jump around while it is being drawn. (MNIST centres by
mass in a 28x28 field; a model trained on it would want that instead.)

An image with no ink at all is refused with a 400 (`BlankImage`): there is nothing to crop to,
and any answer on a blank picture would be a confident-looking guess.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from util.errors import InvalidImage

# A pixel is ink when it differs from the background by more than this (0..255, largest
# channel difference): above JPEG noise and paper grain, below a light pencil stroke.
MIN_CONTRAST = 32
# ... and by at least this share of the strongest difference in the picture, so the faint
# fringe of an anti-aliased stroke or a soft shadow does not widen the box.
RELATIVE_CONTRAST = 0.25


class BlankImage(InvalidImage):
    """The picture has nothing on it to crop to."""

    code = "blank_image"


def background(pixels: np.ndarray) -> np.ndarray:
    """The background colour (C,): per channel, the median of the image's outermost pixels."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    return np.median(border, axis=0)


def ink_box(pixels: np.ndarray, colour: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom), exclusive, of the pixels that differ from `colour`; None when none do."""
    diff = np.abs(pixels.astype(np.int16) - np.rint(colour).astype(np.int16)).max(axis=2)
    peak = int(diff.max())
    if peak <= MIN_CONTRAST:
        return None
    ink = diff > max(MIN_CONTRAST, RELATIVE_CONTRAST * peak)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def frame(box: tuple[int, int, int, int], aspect: float, margin: float) -> tuple[int, int, int, int]:
    """The box grown by `margin` x its longer side on every side, then to `aspect` (width / height), centred."""
    left, top, right, bottom = box
    pad = round(margin * max(right - left, bottom - top))
    width, height = right - left + 2 * pad, bottom - top + 2 * pad
    if width < height * aspect:
        width = max(1, round(height * aspect))
    else:
        height = max(1, round(width / aspect))
    # Twice the centre, in integers: the frame's origin rounds the same way for odd and even sizes.
    x0 = (left + right - width) // 2
    y0 = (top + bottom - height) // 2
    return x0, y0, x0 + width, y0 + height


def crop_to_content(image: Image.Image, size: tuple[int, int], margin: float) -> Image.Image:
    """`image` ("L" or "RGB") cut to its content and padded to the aspect of `size` (width, height)."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    colour = background(pixels)
    box = ink_box(pixels, colour)
    if box is None:
        raise BlankImage("the image is blank: no pixel differs from its background colour, so there is "
                         "nothing to classify (this model crops to the drawn content)")
    x0, y0, x1, y1 = frame(box, size[0] / size[1], margin)
    fill = tuple(int(v) for v in np.rint(colour))
    out = Image.new(image.mode, (x1 - x0, y1 - y0), fill[0] if image.mode == "L" else fill)
    # The frame may reach past the picture's edges: paste only the part inside it.
    inside = (max(x0, 0), max(y0, 0), min(x1, image.width), min(y1, image.height))
    out.paste(image.crop(inside), (inside[0] - x0, inside[1] - y0))
    return out

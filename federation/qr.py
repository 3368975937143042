"""Reading a share link from a picture of its QR code (a PNG the patient's app shows,
or a camera photo of it), with zxing-cpp -- the link text is what the rest of the
federation works with.

Flask-free. The picture is untrusted input: only PNG and JPEG are opened, at most
:data:`MAX_IMAGE_BYTES` and :data:`MAX_PIXELS` (Pillow's decompression-bomb guard
applies below that too), and anything that is no picture or holds no QR code is a
:class:`~federation.errors.LinkError` (400).
"""

from __future__ import annotations

import io
import warnings

from federation.errors import LinkError

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48-megapixel phone photo downscaled by the app; not more
FORMATS = ["PNG", "JPEG"]


def decode(image: bytes) -> str:
    """The text of the QR code in ``image`` (the first holding a share link, if
    several)."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    if not isinstance(image, bytes | bytearray) or not image:
        raise LinkError("the QR code picture is empty")
    if len(image) > MAX_IMAGE_BYTES:
        raise LinkError("the QR code picture is larger than 8 MiB")
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its pixel limit: here that is a refusal too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(image), formats=FORMATS)
        with picture:
            if picture.width * picture.height > MAX_PIXELS:
                raise LinkError("the QR code picture has too many pixels")
            picture.load()
            found = zxingcpp.read_barcodes(picture, formats=zxingcpp.BarcodeFormat.QRCode)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        ValueError,
    ):
        raise LinkError("the QR code picture is not a readable PNG or JPEG image") from None
    texts = [code.text for code in found if code.valid and code.text]
    if not texts:
        raise LinkError("no QR code could be read in the picture")
    return next((t for t in texts if "shlink:/" in t), texts[0])

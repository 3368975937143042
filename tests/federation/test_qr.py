"""Reading a share link from a picture of its QR code: the PNG ``$share`` answers, a
camera-like photo of it (JPEG, turned and scaled), and hostile pictures."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from federation import qr, shlink
from federation.errors import LinkError

LINK = shlink.ShareLink(
    "https://tw.example/fhir/shl/" + "a" * 43, shlink.new_key(), 1_900_000_000, "P", "Lin"
).encode()


def test_the_png_of_share_answers_reads_back_as_the_link():
    assert qr.decode(shlink.qr_png(LINK)) == LINK


def test_a_photo_of_it_reads_too():
    picture = Image.open(io.BytesIO(shlink.qr_png(LINK))).convert("RGB")
    photo = picture.resize((picture.width * 3, picture.height * 3)).rotate(
        7, expand=True, fillcolor="white"
    )
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=70)
    assert qr.decode(out.getvalue()) == LINK


def test_of_several_codes_the_share_link_is_taken():
    other = Image.open(io.BytesIO(shlink.qr_png("https://example.org/not-a-link")))
    link = Image.open(io.BytesIO(shlink.qr_png(LINK)))
    both = Image.new("L", (other.width + link.width + 40, max(other.height, link.height)), 255)
    both.paste(other.convert("L"), (0, 0))
    both.paste(link.convert("L"), (other.width + 40, 0))
    out = io.BytesIO()
    both.save(out, format="PNG")
    assert qr.decode(out.getvalue()) == LINK


def _png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "picture",
    [
        b"",
        b"not an image at all",
        b"GIF89a" + b"\0" * 100,
        _png(Image.new("L", (200, 200), 255)),  # a picture without a code
        shlink.qr_png(LINK)[:200],  # cut short
    ],
)
def test_what_is_no_readable_code_is_a_link_error(picture):
    with pytest.raises(LinkError):
        qr.decode(picture)


def test_too_large_or_too_many_pixels_is_a_link_error():
    with pytest.raises(LinkError, match="8 MiB"):
        qr.decode(b"\x89PNG" + b"\0" * (qr.MAX_IMAGE_BYTES + 1))
    # a tiny file that claims a huge canvas (a decompression bomb) is refused unread
    with pytest.raises(LinkError):
        qr.decode(_png(Image.new("1", (10_000, 10_000), 1)))

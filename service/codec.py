"""Upload bytes -> an RGB uint8 tensor, safely: bad input fails here, before it can join a batch.

Decoding itself is `models.image` (the one decoder of the service, the trainer and the evaluator: EXIF
orientation, every pixel mode to 8-bit RGB, the pixel cap checked on the header). This module adds what HTTP
needs: only JPEG, PNG, WebP and BMP are parsed (`Image.open(..., formats=...)` never hands the bytes to another
plugin), errors become `ApiError`s with their status, and `DecodeBudget` bounds the memory that requests'
images hold together: a request reserves its images' worst case, read from their headers (`request_bytes`),
before a pixel is decoded, waits while others hold the budget, and keeps the decoded pixels' share until it
has answered (they wait in the batcher's queue and go through the model meanwhile).
"""

from __future__ import annotations

import asyncio

from models import image
from models.image import DecodedImage, ImageError, ImageHeader

from .errors import ApiError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
_STATUS = {"too_many_pixels": 413, "unsupported_format": 415}  # every other decode error is a 422

__all__ = [
    "FORMATS",
    "DecodeBudget",
    "DecodedImage",
    "Reservation",
    "decode",
    "max_decode_bytes",
    "probe",
    "request_bytes",
]


def probe(data: bytes, max_pixels: int, name: str = "image") -> ImageHeader:
    """The upload's header (size after EXIF orientation, mode, format), its pixel cap checked; no pixel decoded.

    Raises ApiError: 422 empty / not an image / corrupt header, 415 another format, 413 over `max_pixels`.
    """
    try:
        return image.probe(data, formats=FORMATS, max_pixels=max_pixels, name=name)
    except ImageError as exc:
        raise _api_error(exc) from None


def decode(data: bytes, max_pixels: int, name: str = "image") -> DecodedImage:
    """Decode one upload or raise ApiError: 422 empty / not an image / truncated, 415 other format, 413 too big."""
    try:
        return image.decode(data, max_pixels=max_pixels, formats=FORMATS, name=name)
    except ImageError as exc:
        raise _api_error(exc) from None


def max_decode_bytes(max_pixels: int) -> int:
    """The most memory one accepted upload can take to decode: the pixel cap at the costliest format."""
    return max_pixels * max(image.DECODE_BYTES_PER_PIXEL[f] for f in FORMATS)


def request_bytes(headers: list[ImageHeader]) -> int:
    """The most memory a request's images hold at once, decoded one after the other: every decoded image
    (`pixel_bytes`) plus the largest extra that decoding one of them takes on top of its pixels."""
    return sum(h.pixel_bytes for h in headers) + max((h.decode_bytes - h.pixel_bytes for h in headers), default=0)


class Reservation:
    """Bytes held in a `DecodeBudget`; `shrink` gives back all but some of them, `release` the rest."""

    def __init__(self, budget: DecodeBudget, nbytes: int) -> None:
        self._budget, self.nbytes = budget, nbytes

    def shrink(self, nbytes: int) -> None:
        """Keep only min(nbytes, held) bytes; the others are free for waiting requests at once."""
        keep = max(0, min(nbytes, self.nbytes))
        self._budget._release(self.nbytes - keep)
        self.nbytes = keep

    def release(self) -> None:
        """Give back everything still held (again: nothing)."""
        self.shrink(0)


class DecodeBudget:
    """Bytes of image memory shared by all requests in flight (asyncio; the decodes run in worker threads).

    `acquire(n, timeout)` waits until n bytes are free and returns them as a `Reservation`, in arrival order
    (a large request is not starved by a stream of small ones); TimeoutError after `timeout` seconds. n above the total
    raises ValueError: callers refuse such requests first (the settings guarantee that one image at the pixel
    cap fits).
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.peak = 0  # the most bytes held at once so far
        self._free = total
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def in_use(self) -> int:
        return self.total - self._free

    @property
    def waiting(self) -> int:
        """Reservations waiting for memory now."""
        return len(self._waiters)

    async def acquire(self, nbytes: int, timeout: float | None = None) -> Reservation:
        if nbytes > self.total:
            raise ValueError(f"a decode of {nbytes} bytes can never fit the budget of {self.total}")
        if self._waiters or nbytes > self._free:
            ticket = asyncio.get_running_loop().create_future()
            self._waiters.append((nbytes, ticket))
            try:
                await asyncio.wait_for(ticket, None if timeout is None else max(timeout, 0))
            except BaseException as exc:
                if ticket.done() and not ticket.cancelled():  # granted just as we were cancelled: give it back
                    self._release(nbytes)
                else:
                    self._waiters.remove((nbytes, ticket))
                    self._grant()
                if isinstance(exc, asyncio.TimeoutError):  # a distinct class before Python 3.11
                    raise TimeoutError(f"waited {timeout:.1f} s for {nbytes} bytes of decode memory") from None
                raise
        else:
            self._take(nbytes)
        return Reservation(self, nbytes)

    def _release(self, nbytes: int) -> None:
        self._free += nbytes
        self._grant()

    def _take(self, nbytes: int) -> None:
        self._free -= nbytes
        self.peak = max(self.peak, self.in_use)

    def _grant(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._free:
            nbytes, ticket = self._waiters.pop(0)
            self._take(nbytes)
            ticket.set_result(None)


def _api_error(exc: ImageError) -> ApiError:
    return ApiError(_STATUS.get(exc.kind, 422), exc.kind, str(exc))

"""Pseudorandom mask vectors in Z_{2^32} or Z_{2^64} from a ChaCha20 keystream.

A mask is the ChaCha20 keystream under the full 256-bit seed, read as little-endian
unsigned words, so the seed's entropy is never folded (Flower's SecAgg+ folds it into 32
bits for numpy's Mersenne Twister).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

SEED_SIZE = 32
MASK_LABEL = b"fedrisk-mask"  # 12 bytes: the ChaCha20 nonce of every mask
INITIAL_COUNTER = b"\x00\x00\x00\x00"  # 32-bit little-endian block counter
MASK_NONCE = INITIAL_COUNTER + MASK_LABEL
SUPPORTED_BITS = (32, 64)
MAX_MASK_BYTES = 2**32 * 64 // 2  # well inside the 2**32-block counter range

_DTYPES: dict[int, np.dtype[Any]] = {32: np.dtype("<u4"), 64: np.dtype("<u8")}
_NATIVE: dict[int, np.dtype[Any]] = {32: np.dtype(np.uint32), 64: np.dtype(np.uint64)}


def mask_vector(seed: bytes, length: int, *, bits: int) -> np.ndarray:
    """Expand a 32-byte seed into ``length`` uniformly random words modulo ``2**bits``.

    Parameters
    ----------
    seed : bytes
        A 32-byte secret seed, used for exactly one mask.
    length : int
        The number of words, ``>= 0``.
    bits : int
        The word size: 32 (``uint32``) or 64 (``uint64``).

    Returns
    -------
    np.ndarray
        A writable ``uint32`` or ``uint64`` array of shape ``(length,)``.

    Raises
    ------
    TypeError
        If ``seed`` is not bytes or ``length``/``bits`` is not an int.
    ValueError
        If ``seed`` is not 32 bytes, ``bits`` is not 32 or 64, or ``length`` is negative
        or too large for one keystream.

    Notes
    -----
    The nonce is the constant ``MASK_NONCE`` (counter 0, label ``MASK_LABEL``). That is
    safe only because every seed keys exactly one keystream: pairwise seeds are derived
    fresh per round and node pair (`fedrisk.secure.agreement`), self-mask seeds are drawn
    fresh per round. Reusing a seed would reuse the mask and leak the difference of two
    updates.
    """
    if not isinstance(seed, bytes):
        raise TypeError(f"`seed` must be bytes; got {type(seed).__name__}")
    if len(seed) != SEED_SIZE:
        raise ValueError(f"`seed` must be {SEED_SIZE} bytes; got {len(seed)} bytes")
    for name, value in (("length", length), ("bits", bits)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"`{name}` must be an int; got {type(value).__name__}")
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"`bits` must be one of {SUPPORTED_BITS}; got {bits}")
    nbytes = length * (bits // 8)
    if length < 0 or nbytes > MAX_MASK_BYTES:
        raise ValueError(f"`length` must be in [0, {MAX_MASK_BYTES // (bits // 8)}]; got {length}")
    out = np.zeros(length, dtype=_DTYPES[bits])
    _keystream_into(seed, MASK_NONCE, out.view(np.uint8))
    return out.astype(_NATIVE[bits], copy=False)


def _keystream_into(key: bytes, nonce: bytes, out: np.ndarray) -> None:
    """Overwrite the zero bytes ``out`` with the ChaCha20 keystream for ``key`` and ``nonce``.

    ``cryptography``'s 16-byte nonce is the 4-byte little-endian block counter followed by
    the 12-byte RFC 8439 nonce. The zeros are encrypted in place (OpenSSL's stream
    ciphers allow the input and output to be the same buffer), which is 2–3× faster than
    encrypting a separate buffer of zeros into ``out``: half the memory traffic, and no
    fresh zero pages to fault in.
    """
    encryptor = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
    encryptor.update_into(out.data, out.data)
    encryptor.finalize()

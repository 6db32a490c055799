"""Bitcoin base58check, the text form of SV2 keys in configs and logs.

Written out here (it is an encoding, not cryptography) so that the key errors can say
*which* check failed: a typo shows up as a bad checksum, a key from another format as a
wrong version or length (sv2-digest section 5.4).

Decoding is bounded (``MAX_TEXT_CHARS``): base58 is positional in base 58, so decoding n
characters costs O(n^2) in big-integer arithmetic; a 200 KB "key" took seconds.  Every
key text SV2 uses is about 50 characters (34 or 32 bytes plus a 4-byte checksum), so
anything much longer is refused by its length before any arithmetic.
"""

from __future__ import annotations

import hashlib

from . import errors

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
#: longest text ``b58decode`` accepts: well above any SV2 key's ~52 characters
MAX_TEXT_CHARS = 128


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(ALPHABET[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Bytes of ``text``; KeyLengthError for text above ``MAX_TEXT_CHARS``, before decoding."""
    if len(text) > MAX_TEXT_CHARS:
        raise errors.KeyLengthError(
            f"base58 text of {len(text)} characters is longer than any SV2 key "
            f"(at most {MAX_TEXT_CHARS}; a key is about 50)")
    n = 0
    for c in text:
        i = _INDEX.get(c)
        if i is None:
            raise errors.KeyFormatError(f"{c!r} is not a base58 character")
        n = n * 58 + i
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + _checksum(payload))


def b58check_decode(text: str) -> bytes:
    """The payload without its 4-byte checksum; KeyChecksumError if they disagree."""
    raw = b58decode(text.strip())
    if len(raw) < 4:
        raise errors.KeyLengthError(f"{len(raw)} bytes are too short for base58check")
    payload, check = raw[:-4], raw[-4:]
    if _checksum(payload) != check:
        raise errors.KeyChecksumError("base58check checksum mismatch (mistyped key?)")
    return payload

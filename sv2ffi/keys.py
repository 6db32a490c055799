"""secp256k1 keys for SV2: key pairs, ElligatorSwift, certificates, key text and files.

All curve arithmetic is libsecp256k1's, reached through coincurve (its public API where
it has one, ``coincurve._libsecp256k1`` for ElligatorSwift, which coincurve 21 does not
wrap).  This module only moves bytes in and out and turns refusals into typed errors.

Why ElligatorSwift: SV2's Noise handshake sends public keys as 64-byte BIP324 encodings
that look like random bytes.  An encoding is randomized, so a test vector has to pin
the 64-byte encoding next to the secret key (``EllSwiftKey``), not just the secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from . import base58, errors
from .durable import private_dir, write_atomic

Rng = Callable[[int], bytes]
log = logging.getLogger("sv2ffi.keys")

ELLSWIFT_SIZE = 64
#: Version prefix of an authority public key in text form (U16 LE 1: bytes 01 00).
AUTHORITY_KEY_VERSION = 1

_CTX = GLOBAL_CONTEXT.ctx


def _need(name: str, value: bytes, size: int) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise errors.KeyFormatError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != size:
        raise errors.KeyLengthError(f"{name} must be {size} bytes, got {len(value)}")
    return value


# ---- key pairs -----------------------------------------------------------------------


class Keypair:
    """A secp256k1 secret key and its BIP340 x-only public key.

    The public key is derived on first use: a handshake's ephemeral key never needs it,
    and one scalar multiplication less is a quarter of a server's handshake cost.
    """

    __slots__ = ("secret", "_xonly", "_private")

    def __init__(self, secret: bytes):
        secret = _need("secret key", secret, 32)
        if not lib.secp256k1_ec_seckey_verify(_CTX, secret):
            raise errors.InvalidKeyError("secret key is 0 or not below the curve order")
        self.secret = secret
        self._xonly: bytes | None = None
        self._private: PrivateKey | None = None

    @property
    def xonly(self) -> bytes:
        if self._xonly is None:
            self._xonly = self._coincurve().public_key_xonly.format()
        return self._xonly

    def _coincurve(self) -> PrivateKey:
        if self._private is None:
            self._private = PrivateKey(self.secret)
        return self._private

    @classmethod
    def generate(cls, rng: Rng | None = None) -> "Keypair":
        """A fresh key pair; ``rng(n) -> n bytes`` is injectable for reproducible tests."""
        rng = rng or os.urandom
        for _ in range(128):  # an out-of-range draw has probability ~2^-128
            try:
                return cls(rng(32))
            except errors.InvalidKeyError:
                continue
        raise errors.InvalidKeyError("the random source keeps returning invalid secret keys")

    def sign_schnorr(self, msg32: bytes, aux: bytes = bytes(32)) -> bytes:
        """BIP340 signature over a 32-byte message (zero aux, as sv2-tp, by default)."""
        return self._coincurve().sign_schnorr(_need("message", msg32, 32), _need("aux", aux, 32))

    def ellswift(self, aux: bytes) -> bytes:
        """A 64-byte ElligatorSwift encoding of the public key (randomized by ``aux``)."""
        out = ffi.new("unsigned char[64]")
        if not lib.secp256k1_ellswift_create(_CTX, out, self.secret, _need("aux", aux, 32)):
            raise errors.InvalidEllSwiftError("libsecp256k1 refused to encode the key")
        return bytes(ffi.buffer(out, 64))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keypair) and other.secret == self.secret

    def __hash__(self) -> int:
        return hash(self.secret)

    def __repr__(self) -> str:  # never print the secret
        return f"Keypair(xonly={self.xonly.hex()})"


def ellswift_decode_x(encoding: bytes) -> bytes:
    """The x coordinate (32 B, big-endian) of the point an encoding stands for.

    BIP324 decoding is total: every 64-byte string maps to a point and
    ``secp256k1_ellswift_decode`` is documented to always succeed, so only a wrong
    length can be "invalid" here.  The check on its return value stays in case a future
    library version refuses something.
    """
    encoding = _need_ellswift(encoding)
    pub = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ellswift_decode(_CTX, pub, encoding):
        raise errors.InvalidEllSwiftError("libsecp256k1 refused the ElligatorSwift encoding")
    return PublicKey(pub).format(compressed=True)[1:]


def ellswift_ecdh(ell_a: bytes, ell_b: bytes, secret: bytes, we_are_a: bool) -> bytes:
    """BIP324's x-only ECDH: SHA256(tag || tag || ell_a || ell_b || x(secret*their point)).

    Party A is always the handshake initiator (sv2-digest 5.1), whichever side calls.
    """
    out = ffi.new("unsigned char[32]")
    ok = lib.secp256k1_ellswift_xdh(
        _CTX, out, _need_ellswift(ell_a), _need_ellswift(ell_b), _need("secret key", secret, 32),
        0 if we_are_a else 1, lib.secp256k1_ellswift_xdh_hash_function_bip324, ffi.NULL)
    if not ok:
        raise errors.InvalidEllSwiftError("libsecp256k1 refused the ECDH (invalid secret key)")
    return bytes(ffi.buffer(out, 32))


def _need_ellswift(encoding: bytes) -> bytes:
    if not isinstance(encoding, (bytes, bytearray, memoryview)) or len(encoding) != ELLSWIFT_SIZE:
        n = len(encoding) if isinstance(encoding, (bytes, bytearray, memoryview)) else "no"
        raise errors.InvalidEllSwiftError(f"an ElligatorSwift key is 64 bytes, got {n}")
    return bytes(encoding)


class EllSwiftKey:
    """A key pair together with one fixed ElligatorSwift encoding of its public key.

    Handshakes create these fresh; tests and vectors build them from pinned bytes, and
    then the encoding is checked to belong to the secret.
    """

    __slots__ = ("keypair", "encoding")

    def __init__(self, keypair: Keypair, encoding: bytes, *, check: bool = True):
        encoding = _need_ellswift(encoding)
        if check and ellswift_decode_x(encoding) != keypair.xonly:  # x of secret*G
            raise errors.InvalidEllSwiftError("the encoding does not belong to the secret key")
        self.keypair = keypair
        self.encoding = encoding

    @classmethod
    def generate(cls, rng: Rng | None = None) -> "EllSwiftKey":
        rng = rng or os.urandom
        return cls.for_keypair(Keypair.generate(rng), rng)

    @classmethod
    def for_keypair(cls, keypair: Keypair, rng: Rng | None = None) -> "EllSwiftKey":
        # made by libsecp256k1 from this very secret: nothing to check
        return cls(keypair, keypair.ellswift((rng or os.urandom)(32)), check=False)

    @classmethod
    def from_hex(cls, secret_hex: str, encoding_hex: str) -> "EllSwiftKey":
        return cls(Keypair(bytes.fromhex(secret_hex)), bytes.fromhex(encoding_hex))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, EllSwiftKey) and other.keypair == self.keypair
                and other.encoding == self.encoding)

    def __hash__(self) -> int:
        return hash(self.encoding)

    def __repr__(self) -> str:
        return f"EllSwiftKey(encoding={self.encoding.hex()})"


# ---- certificates (SIGNATURE_NOISE_MESSAGE) ------------------------------------------

_CERT = struct.Struct("<HII")


@dataclass(frozen=True)
class Certificate:
    """The responder's proof, signed by the pool/TP authority key, that its static key may
    speak for it during a validity window (sv2-digest 5.3)."""

    version: int
    valid_from: int
    not_valid_after: int
    signature: bytes

    SIZE = 74

    @staticmethod
    def signed_hash(version: int, valid_from: int, not_valid_after: int,
                    static_xonly: bytes) -> bytes:
        """SHA256(version_LE2 || valid_from_LE4 || not_valid_after_LE4 || static x-only)."""
        try:
            pre = _CERT.pack(version, valid_from, not_valid_after)
        except struct.error:
            raise errors.CertificateError("certificate field out of range (U16/U32)") from None
        return hashlib.sha256(pre + _need("static key", static_xonly, 32)).digest()

    @classmethod
    def issue(cls, authority: Keypair, static_xonly: bytes, valid_from: int,
              not_valid_after: int, *, version: int = 0, aux: bytes = bytes(32)) -> "Certificate":
        m = cls.signed_hash(version, valid_from, not_valid_after, static_xonly)
        return cls(version, valid_from, not_valid_after, authority.sign_schnorr(m, aux))

    def to_bytes(self) -> bytes:
        return _CERT.pack(self.version, self.valid_from, self.not_valid_after) + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> "Certificate":
        if len(data) != cls.SIZE:
            raise errors.CertificateError(f"a certificate is 74 bytes, got {len(data)}")
        version, valid_from, not_valid_after = _CERT.unpack_from(data)
        return cls(version, valid_from, not_valid_after, bytes(data[10:74]))

    def verify(self, authority_xonly: bytes | None, static_xonly: bytes, now: float,
               leeway: float = 10) -> None:
        """Raise the CertificateError subclass that says what is wrong, else return.

        ``authority_xonly=None`` skips only the signature (a client without a configured
        authority key, as SRI allows); version and validity window are still checked.
        """
        if self.version != 0:
            raise errors.CertificateVersionError(f"certificate version {self.version} (only 0 "
                                                 "is defined)")
        if now < self.valid_from - leeway:
            raise errors.CertificateNotYetValidError(
                f"certificate valid from {self.valid_from}, now is {int(now)} "
                f"(leeway {leeway} s)")
        if now > self.not_valid_after + leeway:
            raise errors.CertificateExpiredError(
                f"certificate expired at {self.not_valid_after}, now is {int(now)} "
                f"(leeway {leeway} s)")
        if authority_xonly is None:
            return
        m = self.signed_hash(self.version, self.valid_from, self.not_valid_after, static_xonly)
        if not xonly_key(authority_xonly).verify(self.signature, m):
            raise errors.CertificateWrongSignerError(
                "certificate is not signed by the expected authority key")


def xonly_key(xonly: bytes) -> PublicKeyXOnly:
    """A parsed BIP340 public key; InvalidKeyError if the x coordinate is not on the curve."""
    try:
        return PublicKeyXOnly(_need("x-only public key", xonly, 32))
    except ValueError:
        raise errors.InvalidKeyError("x-only public key is not a point on secp256k1") from None


# ---- text forms ----------------------------------------------------------------------


def encode_authority_pubkey(xonly: bytes) -> str:
    """base58check(01 00 || xonly): the form pools and TPs put in configs and logs."""
    return base58.b58check_encode(AUTHORITY_KEY_VERSION.to_bytes(2, "little")
                                  + _need("x-only public key", xonly, 32))


def decode_authority_pubkey(text: str) -> bytes:
    """The 32-byte x-only key; KeyChecksumError, KeyLengthError or KeyVersionError."""
    payload = base58.b58check_decode(text)
    if len(payload) != 34:
        raise errors.KeyLengthError(
            f"an authority public key is 2 + 32 bytes, this one decodes to {len(payload)}")
    version = int.from_bytes(payload[:2], "little")
    if version != AUTHORITY_KEY_VERSION:
        raise errors.KeyVersionError(f"authority key version {version}, expected 1")
    return payload[2:]


def encode_secret_key(secret: bytes) -> str:
    """base58check(secret), no version prefix (SRI's config format)."""
    return base58.b58check_encode(_need("secret key", secret, 32))


def decode_secret_key(text: str) -> bytes:
    payload = base58.b58check_decode(text)
    if len(payload) != 32:
        raise errors.KeyLengthError(f"a secret key is 32 bytes, this one decodes to "
                                    f"{len(payload)}")
    Keypair(payload)  # range check: InvalidKeyError
    return payload


# ---- key files -----------------------------------------------------------------------

AUTHORITY_KEY_FILE = "sv2_authority_key"
AUTHORITY_PUBKEY_FILE = "sv2_authority_key.pub"
STATIC_KEY_FILE = "sv2_static_key"
#: A key file holds about 50 characters of base58 text (sv2-tp's, 33 bytes): a larger
#: file is not a key, and is refused by its size before it is read or decoded.
MAX_KEY_FILE_SIZE = 4096


def _write_private(path: Path, text: str) -> None:
    """Write atomically, never readable by others, not even for a moment."""
    write_atomic(path, text.encode("ascii"), 0o600)


def write_key_file(path, keypair: Keypair) -> None:
    """The secret key in base58check text, file mode 0600."""
    _write_private(Path(path), encode_secret_key(keypair.secret) + "\n")


def _read_bounded(path) -> tuple[bytes, int]:
    """The bytes of a key-sized regular file, and its permission bits.

    Opened non-blocking, so a FIFO put in a key file's place cannot hang the start; its
    size is checked before reading, and at most ``MAX_KEY_FILE_SIZE + 1`` bytes are read
    in case it grows meanwhile.  KeyFileTooLargeError / KeyFormatError name the file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise errors.KeyFormatError(f"{path} is not a regular file")
        size = st.st_size
        chunks, got = [], 0
        while size <= MAX_KEY_FILE_SIZE and got <= MAX_KEY_FILE_SIZE:
            chunk = os.read(fd, MAX_KEY_FILE_SIZE + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        size = max(size, got)
    finally:
        os.close(fd)
    if size > MAX_KEY_FILE_SIZE:
        raise errors.KeyFileTooLargeError(
            f"{path}: {size} bytes is far too large for a key file (at most "
            f"{MAX_KEY_FILE_SIZE}; a key is about 50 characters of text)")
    return b"".join(chunks), stat.S_IMODE(st.st_mode)


def read_key_file(path) -> Keypair:
    raw, mode = _read_bounded(path)
    if is_sv2tp_key_file(raw):
        raise errors.KeyFormatError(
            f"{path} is one of sv2-tp's binary key files, not sv2ffi's text form; convert "
            f"it with `sv2ffi keygen --import-sv2tp {path}` (the authority key, and so the "
            "public key pools pinned, stays the same)")
    text = raw.decode("ascii", errors="replace").strip()
    try:
        keypair = Keypair(decode_secret_key(text))
    except errors.KeyFormatError as e:
        raise type(e)(f"{path}: {e}") from None
    _warn_if_exposed(path, mode)
    return keypair


def _warn_if_exposed(path, mode: int) -> None:
    """A WARNING, naming the file and the fix, for a secret key others may read or replace.

    A warning, not a refusal as OpenSSH's for a private key readable by others: ssh is
    run by someone at a terminal who can fix it on the spot, a TP is restarted unattended
    (a reboot, a crash), and refusing then would take down every pool's template supply
    without un-leaking anything: if another user could read the key, only a new authority
    key (and every pool pinning it anew) helps, which the operator has to decide.  Keys
    this project writes are 0600 from the first byte; this catches keys copied in by hand
    or restored from a backup.  Said at every start until fixed.
    """
    if mode & 0o077:
        log.warning("%s holds a secret key but its mode %04o lets group or others %s it; "
                    "run `chmod 600 %s` (if anyone else may have read it, see \"Data "
                    "directory and keys\" in docs/operator-guide.md)", path, mode,
                    "read" if mode & 0o044 else "replace", path)


# ---- sv2-tp's key files ----------------------------------------------------------------
#
# sv2-tp (src/sv2/template_provider.cpp) keeps sv2_authority_key and sv2_static_key in its
# network data directory, written as Bitcoin Core serializes a CKey (src/key.h,
# CKey::Serialize): one byte "compressed" flag (1), then the 32 secret bytes, no length
# prefix and no checksum: 33 bytes in all.

SV2TP_KEY_SIZE = 33


def is_sv2tp_key_file(raw: bytes) -> bool:
    """Whether ``raw`` looks like sv2-tp's serialized CKey rather than base58 text."""
    return len(raw) == SV2TP_KEY_SIZE and raw[0] in (0, 1)  # base58 text never starts so


def parse_sv2tp_key(raw: bytes, name: str = "sv2-tp key file") -> Keypair:
    """The secret in one of sv2-tp's key files; KeyFormatError/InvalidKeyError if it is not."""
    if len(raw) != SV2TP_KEY_SIZE or raw[0] not in (0, 1):
        raise errors.KeyLengthError(
            f"{name}: not an sv2-tp key file (expected {SV2TP_KEY_SIZE} bytes: a flag byte 0 "
            f"or 1 and a 32-byte secret; got {len(raw)} bytes"
            + (f" starting with {raw[0]:#04x}" if raw else "") + ")")
    try:
        return Keypair(raw[1:])
    except errors.KeyFormatError as e:
        raise type(e)(f"{name}: {e}") from None


def import_sv2tp_keys(source, datadir, *, overwrite: bool = False,
                      rng: Rng | None = None) -> DatadirKeys:
    """Convert sv2-tp's key files into ``datadir`` (text form, mode 0600).

    ``source`` is sv2-tp's ``sv2_authority_key`` file, or the directory holding it.  Its
    ``sv2_static_key`` is converted too when present beside it, else a new static key is
    made (clients pin only the authority key; the static key is certified per handshake).
    """
    src = Path(source)
    auth_path = src / AUTHORITY_KEY_FILE if src.is_dir() else src
    static_path = auth_path.parent / STATIC_KEY_FILE
    authority = parse_sv2tp_key(_read_bounded(auth_path)[0], str(auth_path))
    if static_path.is_file() and static_path != auth_path:
        static = parse_sv2tp_key(_read_bounded(static_path)[0], str(static_path))
    else:
        static = Keypair.generate(rng)
    keys = DatadirKeys(authority, static)
    _store_datadir_keys(Path(datadir), keys, overwrite)
    return keys


@dataclass(frozen=True)
class DatadirKeys:
    authority: Keypair
    static: Keypair

    @property
    def authority_pubkey_text(self) -> str:
        return encode_authority_pubkey(self.authority.xonly)


def generate_datadir_keys(datadir, *, overwrite: bool = False, rng: Rng | None = None
                          ) -> DatadirKeys:
    """Create an authority key pair and a static key in ``datadir`` (files mode 0600)."""
    keys = DatadirKeys(Keypair.generate(rng), Keypair.generate(rng))
    _store_datadir_keys(Path(datadir), keys, overwrite)
    return keys


def _store_datadir_keys(d: Path, keys: DatadirKeys, overwrite: bool) -> None:
    private_dir(d, parents=True)
    paths = [d / AUTHORITY_KEY_FILE, d / STATIC_KEY_FILE]
    if not overwrite:
        existing = [p for p in paths if p.exists()]
        if existing:
            raise FileExistsError(f"{existing[0]} exists; refusing to overwrite a key")
    write_key_file(paths[0], keys.authority)
    write_key_file(paths[1], keys.static)
    _write_private(d / AUTHORITY_PUBKEY_FILE, keys.authority_pubkey_text + "\n")


def load_datadir_keys(datadir, *, create: bool = True) -> DatadirKeys:
    """The keys a server keeps across restarts (so clients can pin its authority key).

    A newly created authority key is logged at WARNING with its public key: every pool
    that pinned the previous one will refuse this server until its configuration changes,
    so a key appearing unexpectedly must be visible in the log.  The ``.pub`` beside the
    secret is brought in line with it (``_sync_pubkey_file``).
    """
    d = Path(datadir)
    if create and not (d / AUTHORITY_KEY_FILE).exists() and not (d / STATIC_KEY_FILE).exists():
        keys = generate_datadir_keys(d)
        log.warning("created a NEW authority key in %s; its public key (what pools and JDCs "
                    "pin) is %s", d, keys.authority_pubkey_text)
        return keys
    keys = DatadirKeys(read_key_file(d / AUTHORITY_KEY_FILE), read_key_file(d / STATIC_KEY_FILE))
    _sync_pubkey_file(d, keys)
    return keys


def _sync_pubkey_file(d: Path, keys: DatadirKeys) -> None:
    """Rewrite ``sv2_authority_key.pub`` from the secret key when it says anything else.

    The secret is the truth: it is what the TP signs with, and the ``.pub`` only saves
    an operator from deriving the public key to give to pools.  A stale one (a secret
    restored from a backup, a ``.pub`` copied from another host) would have them pin a
    key this TP cannot prove, so a mismatch is a WARNING with both keys.  A missing one
    is simply written again.
    """
    pub, want = d / AUTHORITY_PUBKEY_FILE, keys.authority_pubkey_text
    try:
        have: str | None = _read_bounded(pub)[0].decode("ascii", "replace").strip()
    except FileNotFoundError:
        have = None
    except (errors.KeyFormatError, OSError) as e:
        have = f"unreadable: {e}"
    if have == want:
        return
    try:
        _write_private(pub, want + "\n")
    except OSError as e:
        log.warning("%s does not hold the authority public key %s, and cannot be rewritten: "
                    "%s", pub, want, e.strerror or e)
        return
    if have is None:
        log.info("wrote the missing %s (%s)", pub, want)
    else:
        shown = have if len(have) <= 80 else have[:60] + f"... ({len(have)} characters)"
        log.warning("%s held %r, not the public key of the authority secret key beside it; "
                    "rewrote it with %s, the key this TP signs with and pools must pin",
                    pub, shown, want)

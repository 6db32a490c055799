"""Bitcoin consensus serialization and rules that a template provider needs.

Only what the TP uses: compact sizes, transactions and blocks (with BIP144 witness),
txid/wtxid, merkle root and coinbase merkle path, the BIP141 witness commitment, the BIP34
height push, nBits <-> target, difficulty retargeting per network and the block subsidy.
Every parser works on a ``Reader`` that refuses to read past the end, so truncated or
oversized input becomes a ``BitcoinDecodeError`` (a typed sv2ffi error), never an
IndexError or a silent short read.

Hashes are kept in *internal* byte order (the raw SHA256d output, as inside headers and as
SV2 carries them); ``hash_hex`` gives the reversed form explorers and bitcoind RPC print.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from .errors import BitcoinDecodeError

try:  # merkle trees with OpenSSL's SHA-256 (sv2ffi/native/merkle.c); hashlib without it
    from . import _merkle as _cmerkle
except ImportError:
    _cmerkle = None
try:  # a block's transactions found in C (sv2ffi/native/blockscan.c); Python without it
    from . import _blockscan as _cblockscan
except ImportError:
    _cblockscan = None

MAX_BLOCK_WEIGHT = 4_000_000
MAX_BLOCK_SIGOPS_COST = 80_000
WITNESS_SCALE_FACTOR = 4
COINBASE_MATURITY = 100
COIN = 100_000_000
#: BIP141 witness reserved value the SV2 spec fixes (coinbase witness stack item).
WITNESS_RESERVED_VALUE = bytes(32)
WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
SEQUENCE_FINAL = 0xFFFFFFFF
#: Bitcoin Core's coinbase nSequence since v28 (so nLockTime = height-1 is enforced).
COINBASE_SEQUENCE = 0xFFFFFFFE
NULL_OUTPOINT_HASH = bytes(32)
NULL_OUTPOINT_INDEX = 0xFFFFFFFF


def merkle_hashing() -> str:
    """What hashes merkle trees' nodes (``sv2ffi config``): sv2ffi/native/sha256d.h's road,
    or hashlib when the module was not built."""
    if _cmerkle is None:
        return "hashlib (sv2ffi._merkle was not built: no OpenSSL libcrypto headers)"
    return f"C: {_cmerkle.sha256d_road()} (sv2ffi/native/sha256d.h)"


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def hash_hex(h: bytes) -> str:
    """Internal-order hash -> the reversed hex bitcoind prints."""
    return h[::-1].hex()


def hash_from_hex(s: str) -> bytes:
    """bitcoind's reversed hex -> internal-order hash."""
    b = bytes.fromhex(s)
    if len(b) != 32:
        raise BitcoinDecodeError(f"a hash is 32 bytes, got {len(b)}")
    return b[::-1]


# ---- reading and compact sizes ----------------------------------------------------------


class Reader:
    """A cursor over bytes that refuses to read past the end."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0):
        self.buf = buf
        self.pos = pos

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise BitcoinDecodeError(
                f"truncated: needs {n} bytes at offset {self.pos}, {len(self.buf) - self.pos} left")
        b = self.buf[self.pos:end]
        self.pos = end
        return b

    def u8(self) -> int:
        return self.read(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.read(4))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.read(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.read(8))[0]

    def compact_size(self, limit: int = 0x02000000) -> int:
        """A CompactSize; non-canonical encodings and values above ``limit`` are refused."""
        first = self.u8()
        if first < 0xFD:
            n = first
        elif first == 0xFD:
            n = struct.unpack("<H", self.read(2))[0]
            if n < 0xFD:
                raise BitcoinDecodeError("non-canonical compact size")
        elif first == 0xFE:
            n = struct.unpack("<I", self.read(4))[0]
            if n <= 0xFFFF:
                raise BitcoinDecodeError("non-canonical compact size")
        else:
            n = struct.unpack("<Q", self.read(8))[0]
            if n <= 0xFFFFFFFF:
                raise BitcoinDecodeError("non-canonical compact size")
        if n > limit:
            raise BitcoinDecodeError(f"size {n} exceeds the limit of {limit}")
        return n

    def var_bytes(self) -> bytes:
        return self.read(self.compact_size())

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos


def _scan_size(buf: bytes, pos: int) -> tuple:
    """A CompactSize at ``pos`` -> (value, position after it); no canonical-form check
    (``block_transactions`` leaves that to the full parser)."""
    first = buf[pos]
    if first < 0xFD:
        return first, pos + 1
    width = 2 if first == 0xFD else 4 if first == 0xFE else 8
    return int.from_bytes(buf[pos + 1:pos + 1 + width], "little"), pos + 1 + width


def block_transactions(block: bytes) -> list:
    """A serialized block's transactions as (bytes, txids its inputs spend, wtxid), found
    from the lengths alone, without decoding scripts or building objects (in C when
    ``sv2ffi._blockscan`` is built: 3,000 transactions in about 1 ms instead of 16).

    For templates a node hands over whole (the IPC source's ``getBlock``): most of their
    transactions were in the previous template too, and a transaction whose bytes (its
    wtxid) are already known needs no parse at all.  Anything unknown still goes through
    ``Tx.from_bytes``, which checks what this does not (canonical sizes, the segwit flag).
    Raises BitcoinDecodeError when the lengths do not add up to the block."""
    if _cblockscan is not None:
        try:
            return _cblockscan.block_transactions(block)
        except ValueError as e:
            raise BitcoinDecodeError(str(e)) from None
    return block_transactions_py(block)


def block_transactions_py(block: bytes) -> list:
    """``block_transactions`` in Python: used without ``sv2ffi._blockscan``, and its
    reference in the tests."""
    buf = block
    size = len(buf)
    try:
        n, pos = _scan_size(buf, 80)
        out = []
        for _ in range(n):
            start = pos
            pos += 4
            segwit = buf[pos] == 0
            if segwit:
                pos += 2  # marker and flag
            n_in, pos = _scan_size(buf, pos)
            spends = []
            for _ in range(n_in):
                spends.append(buf[pos:pos + 32])
                length, pos = _scan_size(buf, pos + 36)
                pos += length + 4
            n_out, pos = _scan_size(buf, pos)
            for _ in range(n_out):
                length, pos = _scan_size(buf, pos + 8)
                pos += length
            if segwit:
                for _ in range(n_in):
                    items, pos = _scan_size(buf, pos)
                    for _ in range(items):
                        length, pos = _scan_size(buf, pos)
                        pos += length
            pos += 4
            if pos > size:
                raise BitcoinDecodeError("a transaction runs past the end of the block")
            raw = buf[start:pos]
            out.append((raw, spends, sha256d(raw)))
    except IndexError:
        raise BitcoinDecodeError("the block ends inside a transaction") from None
    if pos != size:
        raise BitcoinDecodeError(f"{size - pos} bytes after the block's last transaction")
    return out


def compact_size(n: int) -> bytes:
    if n < 0:
        raise ValueError("compact size of a negative number")
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def var_bytes(b: bytes) -> bytes:
    return compact_size(len(b)) + b


# ---- scripts ------------------------------------------------------------------------------

OP_0 = 0x00
OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4 = 0x4C, 0x4D, 0x4E
OP_1NEGATE = 0x4F
OP_1, OP_16 = 0x51, 0x60
OP_TRUE = OP_1
OP_RETURN = 0x6A
OP_CHECKSIG, OP_CHECKSIGVERIFY = 0xAC, 0xAD
OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY = 0xAE, 0xAF
MAX_PUBKEYS_PER_MULTISIG = 20


def script_num(n: int) -> bytes:
    """CScriptNum encoding (minimal, sign bit in the last byte)."""
    if n == 0:
        return b""
    neg = n < 0
    a = abs(n)
    out = bytearray()
    while a:
        out.append(a & 0xFF)
        a >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if neg else 0x00)
    elif neg:
        out[-1] |= 0x80
    return bytes(out)


def push_data(data: bytes) -> bytes:
    """The minimal push of ``data`` (as a script fragment)."""
    n = len(data)
    if n < OP_PUSHDATA1:
        return bytes((n,)) + data
    if n <= 0xFF:
        return bytes((OP_PUSHDATA1, n)) + data
    if n <= 0xFFFF:
        return bytes((OP_PUSHDATA2,)) + struct.pack("<H", n) + data
    return bytes((OP_PUSHDATA4,)) + struct.pack("<I", n) + data


def bip34_height_push(height: int) -> bytes:
    """The scriptSig prefix BIP34 requires: ``CScript() << height``.

    Heights 1..16 are the single opcodes OP_1..OP_16 (what Core's ``CScript << int``
    emits); larger heights are a minimal CScriptNum push.  Bitcoin Core's template
    coinbase then appends OP_0 for heights <= 16 to reach the 2-byte scriptSig minimum;
    SV2 clients add their own extranonce after the prefix, so that padding is theirs.
    """
    if height < 0:
        raise ValueError("negative height")
    if height == 0:
        return bytes((OP_0,))
    if height <= 16:
        return bytes((OP_1 + height - 1,))
    return push_data(script_num(height))


def parse_bip34_height(script_sig: bytes) -> int:
    """The height a coinbase scriptSig starts with (inverse of bip34_height_push)."""
    if not script_sig:
        raise BitcoinDecodeError("empty coinbase scriptSig has no BIP34 height")
    op = script_sig[0]
    if op == OP_0:
        return 0
    if OP_1 <= op <= OP_16:
        return op - OP_1 + 1
    if 1 <= op <= 8:
        if len(script_sig) < 1 + op:
            raise BitcoinDecodeError("truncated BIP34 height push")
        raw = script_sig[1:1 + op]
        if raw[-1] & 0x80:
            raise BitcoinDecodeError("negative BIP34 height")
        return int.from_bytes(raw, "little")
    raise BitcoinDecodeError(f"coinbase scriptSig does not start with a height push (0x{op:02x})")


def iter_script_ops(script: bytes):
    """(opcode, pushed data or None) pairs; a truncated push ends the iteration."""
    i, n = 0, len(script)
    while i < n:
        op = script[i]
        i += 1
        if 0 < op < OP_PUSHDATA1:
            size = op
        elif op == OP_PUSHDATA1:
            if i + 1 > n:
                return
            size = script[i]
            i += 1
        elif op == OP_PUSHDATA2:
            if i + 2 > n:
                return
            size = struct.unpack_from("<H", script, i)[0]
            i += 2
        elif op == OP_PUSHDATA4:
            if i + 4 > n:
                return
            size = struct.unpack_from("<I", script, i)[0]
            i += 4
        else:
            yield op, None
            continue
        if i + size > n:
            return
        yield op, script[i:i + size]
        i += size


def legacy_sigops(script: bytes) -> int:
    """Bitcoin Core's ``GetSigOpCount(fAccurate=false)``: multisig counts 20."""
    count = 0
    for op, _ in iter_script_ops(script):
        if op in (OP_CHECKSIG, OP_CHECKSIGVERIFY):
            count += 1
        elif op in (OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY):
            count += MAX_PUBKEYS_PER_MULTISIG
    return count


def p2wsh_script(witness_script: bytes) -> bytes:
    return bytes((OP_0, 32)) + sha256(witness_script)


#: The anyone-can-spend segwit output the built-in regtest chain pays to: P2WSH(OP_TRUE).
#: Spending it needs only the witness ``[OP_TRUE]``: no keys, yet real segwit transactions
#: whose wtxid differs from their txid.
OP_TRUE_SCRIPT = bytes((OP_TRUE,))
P2WSH_OP_TRUE = p2wsh_script(OP_TRUE_SCRIPT)


# ---- transactions ------------------------------------------------------------------------


@dataclass(slots=True)
class TxIn:
    prev_txid: bytes  # internal order
    prev_index: int
    script_sig: bytes = b""
    sequence: int = SEQUENCE_FINAL
    witness: list = field(default_factory=list)  # list[bytes]

    @property
    def is_null(self) -> bool:
        return self.prev_txid == NULL_OUTPOINT_HASH and self.prev_index == NULL_OUTPOINT_INDEX


@dataclass(slots=True)
class TxOut:
    value: int
    script_pubkey: bytes

    def serialize(self) -> bytes:
        return struct.pack("<q", self.value) + var_bytes(self.script_pubkey)

    @classmethod
    def read(cls, r: Reader) -> "TxOut":
        value = struct.unpack("<q", r.read(8))[0]
        return cls(value, r.var_bytes())


@dataclass(slots=True)
class Tx:
    version: int
    vin: list
    vout: list
    locktime: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_witness(self) -> bool:
        return any(i.witness for i in self.vin)

    @property
    def is_coinbase(self) -> bool:
        return len(self.vin) == 1 and self.vin[0].is_null

    def serialize(self, with_witness: bool = True) -> bytes:
        key = "w" if with_witness else "n"
        got = self._cache.get(key)
        if got is not None:
            return got
        wit = with_witness and self.has_witness
        out = [struct.pack("<i", self.version)]
        if wit:
            out.append(b"\x00\x01")
        out.append(compact_size(len(self.vin)))
        for i in self.vin:
            out.append(i.prev_txid + struct.pack("<I", i.prev_index) + var_bytes(i.script_sig)
                       + struct.pack("<I", i.sequence))
        out.append(compact_size(len(self.vout)))
        for o in self.vout:
            out.append(o.serialize())
        if wit:
            for i in self.vin:
                out.append(compact_size(len(i.witness)))
                for item in i.witness:
                    out.append(var_bytes(item))
        out.append(struct.pack("<I", self.locktime))
        data = b"".join(out)
        self._cache[key] = data
        return data

    def invalidate(self) -> None:
        """Forget cached serializations after mutating the transaction."""
        self._cache.clear()

    @property
    def txid(self) -> bytes:
        return sha256d(self.serialize(False))

    @property
    def wtxid(self) -> bytes:
        return sha256d(self.serialize(True))

    @property
    def weight(self) -> int:
        base = len(self.serialize(False))
        total = len(self.serialize(True))
        return base * (WITNESS_SCALE_FACTOR - 1) + total

    @property
    def vsize(self) -> int:
        return (self.weight + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

    def legacy_sigops_cost(self) -> int:
        """Sigops cost visible without the spent outputs (legacy count x 4)."""
        n = sum(legacy_sigops(i.script_sig) for i in self.vin)
        n += sum(legacy_sigops(o.script_pubkey) for o in self.vout)
        return n * WITNESS_SCALE_FACTOR

    @classmethod
    def read(cls, r: Reader) -> "Tx":
        start = r.pos
        version = r.i32()
        n_in = r.compact_size(100_000)
        flag_witness = False
        if n_in == 0:
            flag = r.u8()
            if flag != 1:
                raise BitcoinDecodeError(f"bad segwit flag {flag}")
            flag_witness = True
            n_in = r.compact_size(100_000)
            if n_in == 0:
                raise BitcoinDecodeError("transaction without inputs")
        vin = []
        for _ in range(n_in):
            prev = r.read(32)
            idx = r.u32()
            ss = r.var_bytes()
            seq = r.u32()
            vin.append(TxIn(prev, idx, ss, seq))
        n_out = r.compact_size(100_000)
        vout = [TxOut.read(r) for _ in range(n_out)]
        if flag_witness:
            for i in vin:
                i.witness = [r.var_bytes() for _ in range(r.compact_size(100_000))]
            if not any(i.witness for i in vin):
                raise BitcoinDecodeError("segwit flag set but no witness data")
        locktime = r.u32()
        tx = cls(version, vin, vout, locktime)
        tx._cache["w"] = r.buf[start:r.pos]
        return tx

    @classmethod
    def from_bytes(cls, data: bytes) -> "Tx":
        r = Reader(bytes(data))
        tx = cls.read(r)
        if r.remaining:
            raise BitcoinDecodeError(f"{r.remaining} trailing bytes after the transaction")
        return tx


# ---- headers and blocks ------------------------------------------------------------------


@dataclass(slots=True)
class BlockHeader:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        return (struct.pack("<I", self.version & 0xFFFFFFFF) + self.prev_hash + self.merkle_root
                + struct.pack("<III", self.time, self.bits, self.nonce))

    @property
    def hash(self) -> bytes:
        return sha256d(self.serialize())

    @classmethod
    def read(cls, r: Reader) -> "BlockHeader":
        version = r.u32()
        prev = r.read(32)
        root = r.read(32)
        t, bits, nonce = struct.unpack("<III", r.read(12))
        return cls(version, prev, root, t, bits, nonce)

    @classmethod
    def from_bytes(cls, data: bytes) -> "BlockHeader":
        if len(data) != 80:
            raise BitcoinDecodeError(f"a block header is 80 bytes, got {len(data)}")
        return cls.read(Reader(bytes(data)))


@dataclass(slots=True)
class Block:
    header: BlockHeader
    txs: list

    def serialize(self, with_witness: bool = True) -> bytes:
        return (self.header.serialize() + compact_size(len(self.txs))
                + b"".join(t.serialize(with_witness) for t in self.txs))

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @classmethod
    def from_bytes(cls, data: bytes) -> "Block":
        r = Reader(bytes(data))
        header = BlockHeader.read(r)
        n = r.compact_size(MAX_BLOCK_WEIGHT // 60)
        if n == 0:
            raise BitcoinDecodeError("block without transactions")
        txs = [Tx.read(r) for _ in range(n)]
        if r.remaining:
            raise BitcoinDecodeError(f"{r.remaining} trailing bytes after the block")
        return cls(header, txs)

    @property
    def weight(self) -> int:
        base = len(self.serialize(False))
        total = len(self.serialize(True))
        return base * (WITNESS_SCALE_FACTOR - 1) + total


# ---- merkle trees -----------------------------------------------------------------------


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Bitcoin's merkle root (odd levels duplicate their last node)."""
    if _cmerkle is not None:
        return _cmerkle.merkle_root(b"".join(hashes), len(hashes))
    return merkle_root_py(hashes)


def merkle_root_py(hashes: Sequence[bytes]) -> bytes:
    """``merkle_root`` through hashlib: used without ``sv2ffi._merkle``, and its reference."""
    if not hashes:
        raise ValueError("merkle root of nothing")
    level = list(hashes)
    while len(level) > 1:
        if len(level) & 1:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def coinbase_merkle_path(txids: Sequence[bytes]) -> list:
    """Siblings of the coinbase leaf, leaf level first, for a block whose non-coinbase
    transactions have ``txids`` (in block order).

    The coinbase's own hash never influences its siblings, so a placeholder stands in.
    """
    if _cmerkle is not None:
        return _cmerkle.coinbase_merkle_path(b"".join(txids), len(txids))
    return coinbase_merkle_path_py(txids)


def coinbase_merkle_path_py(txids: Sequence[bytes]) -> list:
    """``coinbase_merkle_path`` through hashlib (no ``sv2ffi._merkle``; the reference)."""
    path: list = []
    level = [bytes(32)] + list(txids)
    while len(level) > 1:
        if len(level) & 1:
            level.append(level[-1])
        path.append(level[1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return path


def merkle_root_from_path(leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root from the coinbase leaf and its path (the coinbase is always on the left)."""
    h = leaf
    for p in path:
        h = sha256d(h + p)
    return h


# ---- witness commitment -----------------------------------------------------------------


def witness_commitment(wtxids: Sequence[bytes],
                       reserved_value: bytes = WITNESS_RESERVED_VALUE) -> bytes:
    """SHA256d(witness root || reserved value); ``wtxids`` exclude the coinbase (its wtxid
    counts as 32 zero bytes)."""
    return witness_commitment_from_root(merkle_root([bytes(32)] + list(wtxids)), reserved_value)


def witness_commitment_from_root(root: bytes,
                                 reserved_value: bytes = WITNESS_RESERVED_VALUE) -> bytes:
    """The commitment from a witness merkle root already computed (the coinbase's wtxid
    as 32 zero bytes in it)."""
    return sha256d(root + reserved_value)


def witness_commitment_script(commitment: bytes) -> bytes:
    return bytes((OP_RETURN, 0x24)) + WITNESS_COMMITMENT_HEADER + commitment


def witness_commitment_output(wtxids: Sequence[bytes]) -> TxOut:
    return TxOut(0, witness_commitment_script(witness_commitment(wtxids)))


def witness_commitment_output_from_root(root: bytes) -> TxOut:
    return TxOut(0, witness_commitment_script(witness_commitment_from_root(root)))


def find_witness_commitment(coinbase: Tx) -> Optional[int]:
    """Index of the output holding the witness commitment (the last matching one, as
    consensus reads it), or None."""
    found = None
    for i, o in enumerate(coinbase.vout):
        s = o.script_pubkey
        if len(s) >= 38 and s[0] == OP_RETURN and s[1] == 0x24 and s[2:6] == WITNESS_COMMITMENT_HEADER:
            found = i
    return found


# ---- proof of work ----------------------------------------------------------------------


def bits_to_target(bits: int) -> int:
    """nBits (compact) -> target; negative or overflowing encodings are refused."""
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    if bits & 0x00800000 and mantissa:
        raise BitcoinDecodeError(f"negative nBits 0x{bits:08x}")
    if exponent <= 3:
        target = mantissa >> (8 * (3 - exponent))
    else:
        target = mantissa << (8 * (exponent - 3))
    if target.bit_length() > 256:
        raise BitcoinDecodeError(f"nBits 0x{bits:08x} overflows 256 bits")
    return target


def target_to_bits(target: int) -> int:
    """target -> nBits, as Bitcoin Core's ``arith_uint256::GetCompact``."""
    if target <= 0:
        return 0
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    return (size << 24) | (compact & 0x007FFFFF)


def hash_meets_target(header_hash: bytes, target: int) -> bool:
    return int.from_bytes(header_hash, "little") <= target


def target_le(target: int) -> bytes:
    """The SV2 U256 form of a target (little-endian bytes)."""
    return target.to_bytes(32, "little")


# ---- networks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """Consensus parameters that change what a template or the next nBits must be."""

    name: str
    pow_limit: int
    halving_interval: int = 210_000
    target_timespan: int = 14 * 24 * 60 * 60
    target_spacing: int = 600
    allow_min_difficulty: bool = False  # testnet's 20-minute rule
    no_retargeting: bool = False  # regtest
    enforce_bip94: bool = False  # testnet4: retarget from the first block of the period
    sv2_port: int = 8442
    rpc_port: int = 8332

    @property
    def interval(self) -> int:
        return self.target_timespan // self.target_spacing

    @property
    def pow_limit_bits(self) -> int:
        return target_to_bits(self.pow_limit)


NETWORKS = {
    "main": Network("main", 0x00000000FFFF << 208, sv2_port=8442, rpc_port=8332),
    "test": Network("test", 0x00000000FFFF << 208, allow_min_difficulty=True, sv2_port=18442,
                    rpc_port=18332),
    "testnet4": Network("testnet4", 0x00000000FFFF << 208, allow_min_difficulty=True,
                        enforce_bip94=True, sv2_port=48442, rpc_port=48332),
    "signet": Network("signet", 0x377AE << 216, sv2_port=38442, rpc_port=38332),
    "regtest": Network("regtest", 0x7FFFFF << 232, halving_interval=150,
                       allow_min_difficulty=True, no_retargeting=True, sv2_port=18447,
                       rpc_port=18443),
}
#: Names bitcoind and sv2-tp accept for --chain, mapped to ours.
CHAIN_ALIASES = {"main": "main", "mainnet": "main", "test": "test", "testnet": "test",
                 "testnet3": "test", "testnet4": "testnet4", "signet": "signet",
                 "regtest": "regtest"}


def network(name: str) -> Network:
    try:
        return NETWORKS[CHAIN_ALIASES[name]]
    except KeyError:
        raise ValueError(f"unknown chain {name!r} (one of {', '.join(sorted(CHAIN_ALIASES))})") \
            from None


def block_subsidy(height: int, net: Network) -> int:
    halvings = height // net.halving_interval
    if halvings >= 64:
        return 0
    return (50 * COIN) >> halvings


@dataclass(frozen=True)
class HeaderInfo:
    """What retargeting needs to know about one block of the chain."""

    height: int
    time: int
    bits: int


def next_work_required(net: Network, tip: HeaderInfo, new_block_time: int,
                       ancestor: Callable[[int], HeaderInfo]) -> int:
    """nBits for the block after ``tip`` (Bitcoin Core's ``GetNextWorkRequired``).

    ``ancestor(height)`` returns the header at a height of the same chain; it is only
    called at retarget boundaries and by the testnet min-difficulty walk-back.
    """
    limit_bits = net.pow_limit_bits
    height = tip.height + 1
    if height % net.interval != 0:
        if net.allow_min_difficulty:
            if new_block_time > tip.time + net.target_spacing * 2:
                return limit_bits
            h = tip
            while h.height > 0 and h.height % net.interval != 0 and h.bits == limit_bits:
                h = ancestor(h.height - 1)
            return h.bits
        return tip.bits
    if net.no_retargeting:
        return tip.bits
    first = ancestor(height - net.interval)
    span = tip.time - first.time
    span = max(net.target_timespan // 4, min(span, net.target_timespan * 4))
    base_bits = first.bits if net.enforce_bip94 else tip.bits
    target = bits_to_target(base_bits) * span // net.target_timespan
    return target_to_bits(min(target, net.pow_limit))


def median_time_past(times: Sequence[int]) -> int:
    """Median of (up to) the last 11 block times, as Core's ``GetMedianTimePast``."""
    last = sorted(times[-11:])
    return last[len(last) // 2]


# ---- coinbase helpers ---------------------------------------------------------------------


def coinbase_tx(height: int, outputs: Sequence[TxOut], *, extra: bytes = b"",
                version: int = 2, sequence: int = COINBASE_SEQUENCE,
                locktime: Optional[int] = None, witness: bool = True) -> Tx:
    """A coinbase with the BIP34 height push (+ ``extra``) and the witness reserved value."""
    script_sig = bip34_height_push(height) + extra
    if len(script_sig) < 2:
        script_sig += bytes((OP_0,))
    txin = TxIn(NULL_OUTPOINT_HASH, NULL_OUTPOINT_INDEX, script_sig, sequence,
                [WITNESS_RESERVED_VALUE] if witness else [])
    return Tx(version, [txin], list(outputs), max(height - 1, 0) if locktime is None else locktime)


# ---- segwit addresses (BIP173 / BIP350), for generatetoaddress and payout flags ------------

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3
#: human-readable part of segwit addresses per network
ADDRESS_HRP = {"main": "bc", "test": "tb", "testnet4": "tb", "signet": "tb", "regtest": "bcrt"}


def _bech32_polymod(values) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convertbits(data, frombits: int, tobits: int, pad: bool) -> Optional[list]:
    acc = bits = 0
    out = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (tobits - bits)) & maxv)
    elif not pad and (bits >= frombits or ((acc << (tobits - bits)) & maxv)):
        return None
    return out


def encode_segwit_address(hrp: str, version: int, program: bytes) -> str:
    const = 1 if version == 0 else _BECH32M_CONST
    data = [version] + _convertbits(program, 8, 5, True)
    poly = _bech32_polymod(_hrp_expand(hrp) + data + [0] * 6) ^ const
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[d] for d in data + checksum)


def decode_segwit_address(hrp: str, addr: str) -> bytes:
    """scriptPubKey of a segwit address of network ``hrp``; BitcoinDecodeError otherwise."""
    if addr.lower() != addr and addr.upper() != addr:
        raise BitcoinDecodeError("mixed-case address")
    addr = addr.lower()
    pos = addr.rfind("1")
    if addr[:pos] != hrp or pos + 7 > len(addr) or len(addr) > 90:
        raise BitcoinDecodeError(f"not a {hrp} segwit address: {addr!r}")
    try:
        data = [_BECH32_CHARSET.index(c) for c in addr[pos + 1:]]
    except ValueError:
        raise BitcoinDecodeError("invalid bech32 character") from None
    const = _bech32_polymod(_hrp_expand(hrp) + data)
    version = data[0] if data else -1
    if const != (1 if version == 0 else _BECH32M_CONST):
        raise BitcoinDecodeError("bad bech32 checksum")
    prog = _convertbits(data[1:-6], 5, 8, False)
    if prog is None or not 2 <= len(prog) <= 40 or version > 16 or \
            (version == 0 and len(prog) not in (20, 32)):
        raise BitcoinDecodeError("invalid witness program")
    return bytes((version + 0x50 if version else 0, len(prog))) + bytes(prog)


def script_address(script: bytes, net: Network) -> Optional[str]:
    """The segwit address of a scriptPubKey, or None for other scripts."""
    if 4 <= len(script) <= 42 and script[1] == len(script) - 2 and (
            script[0] == 0 or OP_1 <= script[0] <= OP_16):
        version = 0 if script[0] == 0 else script[0] - 0x50
        return encode_segwit_address(ADDRESS_HRP[net.name], version, script[2:])
    return None

"""The single source of truth: SV2 data types and one row per message.

Everything that names a message, its msg_type, its channel bit or its fields is derived
from the tables in this module: the Python message classes and the codec
(``sv2ffi.codec``), the JSON form of the CLI, the generated C header ``include/sv2.h``
and the cffi declarations of libsv2 (``scripts/build_header.py``).  Adding a message is
adding one row to ``MESSAGES``.

Byte layouts follow ``shared/spec/sv2-digest.md`` sections 1, 3 and 4 (the SV2 spec,
chapters 3, 7 and 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field as _field
from typing import Optional

# --------------------------------------------------------------------------------------
# Primitive types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sv2Type:
    """One SV2 wire type.

    ``kind`` selects the codec routine; the remaining attributes parameterise it, so the
    codec has one routine per *kind* rather than one per type.  ``c_type`` is the C
    spelling used inside message structs of the generated header.
    """

    name: str
    kind: str  # "int" | "bool" | "f32" | "fixed" | "bytes" | "seq"
    doc: str
    size: Optional[int] = None  # wire size of fixed-size types
    max_value: Optional[int] = None  # ints
    len_size: Optional[int] = None  # length/count prefix size of var types
    max_len: Optional[int] = None  # max byte length (bytes) or element count (seq)
    text: bool = False  # STR0_255: exposed to Python as str
    elem: Optional["Sv2Type"] = None  # seq element type
    c_type: str = ""

    @property
    def fixed_size(self) -> Optional[int]:
        """Wire size when it does not depend on the value, else None."""
        return self.size


def _int(name: str, size: int, c_type: str, doc: str) -> Sv2Type:
    return Sv2Type(name, "int", doc, size=size, max_value=(1 << (8 * size)) - 1, c_type=c_type)


def _bytes(name: str, len_size: int, max_len: int, doc: str, text: bool = False) -> Sv2Type:
    return Sv2Type(name, "bytes", doc, len_size=len_size, max_len=max_len, text=text,
                   c_type="Sv2Bytes")


U8 = _int("U8", 1, "uint8_t", "unsigned 8-bit integer")
U16 = _int("U16", 2, "uint16_t", "unsigned 16-bit integer, little-endian")
U24 = _int("U24", 3, "uint32_t", "unsigned 24-bit integer, little-endian")
U32 = _int("U32", 4, "uint32_t", "unsigned 32-bit integer, little-endian")
U64 = _int("U64", 8, "uint64_t", "unsigned 64-bit integer, little-endian")
BOOL = Sv2Type("BOOL", "bool", "boolean; receivers read bit 0 only", size=1, c_type="bool")
F32 = Sv2Type("F32", "f32", "IEEE-754 binary32, little-endian", size=4, c_type="float")
U256 = Sv2Type("U256", "fixed", "256-bit value, little-endian (hashes in internal byte order)",
               size=32, c_type="uint8_t[32]")
PUBKEY = Sv2Type("PUBKEY", "fixed", "BIP340 x-only public key", size=32, c_type="uint8_t[32]")
SIGNATURE = Sv2Type("SIGNATURE", "fixed", "BIP340 Schnorr signature", size=64,
                    c_type="uint8_t[64]")
STR0_255 = _bytes("STR0_255", 1, 255, "string of up to 255 bytes (U8 length prefix)", text=True)
B0_32 = _bytes("B0_32", 1, 32, "byte string of up to 32 bytes (U8 length prefix)")
B0_255 = _bytes("B0_255", 1, 255, "byte string of up to 255 bytes (U8 length prefix)")
B0_64K = _bytes("B0_64K", 2, 65535, "byte string of up to 65535 bytes (U16 length prefix)")
B0_16M = _bytes("B0_16M", 3, (1 << 24) - 1,
                "byte string of up to 2^24-1 bytes (U24 length prefix)")


def SEQ0_255(elem: Sv2Type) -> Sv2Type:
    """Sequence of up to 255 elements with a U8 count."""
    return Sv2Type(f"SEQ0_255[{elem.name}]", "seq", "sequence of up to 255 elements",
                   len_size=1, max_len=255, elem=elem, c_type="seq")


def SEQ0_64K(elem: Sv2Type) -> Sv2Type:
    """Sequence of up to 65535 elements with a U16 count."""
    return Sv2Type(f"SEQ0_64K[{elem.name}]", "seq", "sequence of up to 65535 elements",
                   len_size=2, max_len=65535, elem=elem, c_type="seq")


def OPTION(elem: Sv2Type) -> Sv2Type:
    """Zero or one element: a SEQ0_1 on the wire (U8 count 0 or 1)."""
    return Sv2Type(f"OPTION[{elem.name}]", "seq", "optional value (0 or 1 element)",
                   len_size=1, max_len=1, elem=elem, c_type="seq")


PRIMITIVES = (U8, U16, U24, U32, U64, U256, BOOL, F32, STR0_255, B0_32, B0_255, B0_64K,
              B0_16M, PUBKEY, SIGNATURE)

# --------------------------------------------------------------------------------------
# Protocol-level constants
# --------------------------------------------------------------------------------------

#: SetupConnection.protocol values (spec 3.1); any other value is refused at decode time.
PROTOCOLS = {0: "MINING", 1: "JOB_DECLARATION", 2: "TEMPLATE_DISTRIBUTION"}
#: The one protocol version defined so far; SetupConnection must include it in [min, max].
PROTOCOL_VERSION = 2

CHANNEL_BIT = 0x8000  #: bit of extension_type that marks a channel message
EXTENSION_TYPE_MASK = 0x7FFF
FRAME_HEADER_SIZE = 6
MAX_PAYLOAD = (1 << 24) - 1  #: what the U24 length of a frame header can express

#: Legacy CoinbaseOutputDataSize (4 bytes) carries no sigops; sv2-tp assumes Bitcoin
#: Core's default coinbase sigops reservation, and so do we.
LEGACY_COINBASE_SIGOPS = 400

#: Error codes used in SetupConnection.Error / RequestTransactionData.Error.
ERROR_CODES = {
    "UNSUPPORTED_FEATURE_FLAGS": "unsupported-feature-flags",
    "UNSUPPORTED_PROTOCOL": "unsupported-protocol",
    "PROTOCOL_VERSION_MISMATCH": "protocol-version-mismatch",
    "TEMPLATE_ID_NOT_FOUND": "template-id-not-found",
    "STALE_TEMPLATE_ID": "stale-template-id",
}

# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One message field, in wire order.

    ``choices`` restricts the value (decode refuses others); ``absent_default`` allows a
    payload to end before this field (and every later one), which then takes the default
    (for the legacy 4-byte CoinbaseOutputDataSize).
    """

    name: str
    type: Sv2Type
    doc: str = ""
    choices: Optional[dict] = None
    absent_default: Optional[object] = None


@dataclass(frozen=True)
class MessageSpec:
    """One SV2 message: where it belongs, how it is identified, what it carries."""

    name: str  # spec name, e.g. "SetupConnection.Success"
    protocol: str  # "common" | "template_distribution"
    msg_type: int
    channel_msg: bool
    doc: str
    fields: tuple = _field(default_factory=tuple)
    extension_type: int = 0

    @property
    def class_name(self) -> str:
        """Python class name: the spec name without dots (SetupConnectionSuccess)."""
        return self.name.replace(".", "")

    @property
    def snake_name(self) -> str:
        """lower_snake form (setup_connection_success): C union member, Python helpers."""
        out = []
        for i, ch in enumerate(self.class_name):
            if ch.isupper() and i:
                out.append("_")
            out.append(ch.lower())
        return "".join(out)

    @property
    def const_name(self) -> str:
        """UPPER_SNAKE form used by C constants (SV2_MSG_<const_name>)."""
        return self.snake_name.upper()


F = Field

MESSAGES: tuple[MessageSpec, ...] = (
    # ---- Common messages (spec 3.1-3.5) -------------------------------------------------
    MessageSpec(
        "SetupConnection", "common", 0x00, False,
        "First message of a connection: which protocol and versions the client speaks.",
        (
            F("protocol", U8, "0 mining, 1 job declaration, 2 template distribution",
              choices=PROTOCOLS),
            F("min_version", U16, "lowest protocol version the client supports"),
            F("max_version", U16, "highest protocol version the client supports"),
            F("flags", U32, "protocol-specific feature flags (none defined for TDP)"),
            F("endpoint_host", STR0_255, "host the client connected to"),
            F("endpoint_port", U16, "port the client connected to"),
            F("vendor", STR0_255, "device vendor"),
            F("hardware_version", STR0_255, "device hardware version"),
            F("firmware", STR0_255, "device firmware version"),
            F("device_id", STR0_255, "device identifier, empty without telemetry"),
        )),
    MessageSpec(
        "SetupConnection.Success", "common", 0x01, False,
        "The server accepts the connection and says which version it will use.",
        (
            F("used_version", U16, "protocol version chosen by the server"),
            F("flags", U32, "flags the server requires (none defined for TDP)"),
        )),
    MessageSpec(
        "SetupConnection.Error", "common", 0x02, False,
        "The server refuses the connection; it closes it after sending this.",
        (
            F("flags", U32, "client flags the server does not support (0: not a flags issue)"),
            F("error_code", STR0_255, "e.g. unsupported-protocol, protocol-version-mismatch"),
        )),
    MessageSpec(
        "ChannelEndpointChanged", "common", 0x03, True,
        "The upstream endpoint of a channel changed; the client must reset its state for it.",
        (
            F("channel_id", U32, "channel whose endpoint changed"),
        )),
    MessageSpec(
        "Reconnect", "common", 0x04, False,
        "Ask the client to reconnect elsewhere (same authority key required).",
        (
            F("new_host", STR0_255, "host to reconnect to; empty means the same host"),
            F("new_port", U16, "port to reconnect to; 0 means the same port"),
        )),
    # ---- Template Distribution Protocol (spec 7) ---------------------------------------
    MessageSpec(
        "CoinbaseOutputConstraints", "template_distribution", 0x70, False,
        "Space and sigops the client will add to the coinbase; the TP keeps them free "
        "(formerly CoinbaseOutputDataSize, 4 bytes, without sigops).",
        (
            F("coinbase_output_max_additional_size", U32,
              "max serialized bytes of coinbase outputs the client adds"),
            F("coinbase_output_max_additional_sigops", U16,
              "max sigops of those outputs; absent in the legacy 4-byte form (then 400)",
              absent_default=LEGACY_COINBASE_SIGOPS),
        )),
    MessageSpec(
        "NewTemplate", "template_distribution", 0x71, False,
        "A block template: everything needed to build the coinbase and the merkle root.",
        (
            F("template_id", U64, "TP-assigned id, increasing per connection"),
            F("future_template", BOOL, "true: for a SetNewPrevHash still to come"),
            F("version", U32, "block header nVersion"),
            F("coinbase_tx_version", U32, "coinbase transaction nVersion"),
            F("coinbase_prefix", B0_255, "bytes the coinbase scriptSig must start with"),
            F("coinbase_tx_input_sequence", U32, "nSequence of the coinbase input"),
            F("coinbase_tx_value_remaining", U64, "satoshis the client may assign"),
            F("coinbase_tx_outputs_count", U32, "number of outputs in coinbase_tx_outputs"),
            F("coinbase_tx_outputs", B0_64K,
              "serialized outputs to append to the coinbase (witness commitment)"),
            F("coinbase_tx_locktime", U32, "coinbase nLockTime"),
            F("merkle_path", SEQ0_255(U256), "coinbase merkle branch, leaf level first"),
        )),
    MessageSpec(
        "SetNewPrevHash", "template_distribution", 0x72, False,
        "A new chain tip: start mining the future template it names.",
        (
            F("template_id", U64, "id of a future NewTemplate already sent"),
            F("prev_hash", U256, "previous block hash as in the header"),
            F("header_timestamp", U32, "nTime to start with"),
            F("n_bits", U32, "header nBits"),
            F("target", U256, "max header hash (little-endian) of a valid block"),
        )),
    MessageSpec(
        "RequestTransactionData", "template_distribution", 0x73, False,
        "Ask for the transactions of a template (job declaration needs them).",
        (
            F("template_id", U64, "template whose transactions are wanted"),
        )),
    MessageSpec(
        "RequestTransactionData.Success", "template_distribution", 0x74, False,
        "The transactions of a template, in block order, witness-serialized.",
        (
            F("template_id", U64, "template the data belongs to"),
            F("excess_data", B0_64K, "coinbase witness reserved value (opaque to clients)"),
            F("transaction_list", SEQ0_64K(B0_16M), "non-coinbase transactions in block order"),
        )),
    MessageSpec(
        "RequestTransactionData.Error", "template_distribution", 0x75, False,
        "Transaction data cannot be served for that template.",
        (
            F("template_id", U64, "template that was asked for"),
            F("error_code", STR0_255, "template-id-not-found or stale-template-id"),
        )),
    MessageSpec(
        "SubmitSolution", "template_distribution", 0x76, False,
        "A solved block for a template: header fields and the full coinbase.",
        (
            F("template_id", U64, "template that was solved"),
            F("version", U32, "header nVersion (with rolled bits)"),
            F("header_timestamp", U32, "header nTime"),
            F("header_nonce", U32, "header nonce"),
            F("coinbase_tx", B0_64K, "complete coinbase transaction, with witness"),
        )),
)

MESSAGES_BY_NAME = {m.name: m for m in MESSAGES}
MESSAGES_BY_KEY = {(m.extension_type, m.msg_type): m for m in MESSAGES}


def message_spec(name: str) -> MessageSpec:
    """Look a message up by spec name ("SetupConnection.Success") or class name."""
    spec = MESSAGES_BY_NAME.get(name)
    if spec is None:
        for m in MESSAGES:
            if m.class_name == name:
                return m
        raise KeyError(name)
    return spec


def _check_table() -> None:
    """Refuse an inconsistent table at import time instead of encoding wrong bytes later."""
    keys = set()
    for m in MESSAGES:
        key = (m.extension_type, m.msg_type)
        assert key not in keys, f"duplicate message id {key}"
        keys.add(key)
        names = [f.name for f in m.fields]
        assert len(names) == len(set(names)), f"duplicate field in {m.name}"
        if m.channel_msg:
            assert m.fields and m.fields[0].name == "channel_id" and m.fields[0].type is U32, \
                f"{m.name}: channel messages start with U32 channel_id"
        seen_default = False
        for f in m.fields:
            if f.absent_default is not None:
                seen_default = True
            else:
                assert not seen_default, f"{m.name}: absent_default fields must be trailing"


_check_table()

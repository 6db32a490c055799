"""The single source of truth: SV2 data types and one row per message.

Everything that names a message, its msg_type, its channel bit or its fields is derived
from the tables in this module: the Python message classes and the codec
(``sv2ffi.codec``), the JSON form of the CLI, the generated C header ``include/sv2.h``
and the cffi declarations of libsv2 (``scripts/build_header.py``).  Adding a message is
adding one row to ``MESSAGES``.

Byte layouts follow the SV2 specification, stratum-mining/sv2-spec at commit
0f38d51dcd569e8f76575bf03cdf12848f4a4bef (2026-08-20): 03-Protocol-Overview (framing,
TLV fields), 05-Mining-Protocol, 06-Job-Declaration-Protocol, 07-Template-Distribution-
Protocol, 08-Message-Types (ids and channel bits) and extensions/ (0x0001 Extensions
Negotiation: three messages; 0x0002 Worker-Specific Hashrate Tracking: one TLV field of
SubmitSharesExtended).  ``shared/spec/sv2-digest.md`` sections 1, 3 and 4 explain the
Common and Template Distribution rows.  Where the spec and SRI (stratum-mining/stratum)
differ in a name, the row says so in its doc.
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
    #: (extension_type, field_type) of a TLV field: an optional trailing value, on the
    #: wire as ext U16 | field U8 | length U16 | value instead of an OPTION's count
    tlv: Optional[tuple] = None

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


def TLV(extension_type: int, field_type: int, value: Sv2Type) -> Sv2Type:
    """An optional TLV field appended to a message by an extension (spec 3.4.3).

    To Python, JSON and C it is an OPTION of ``value`` (absent, or one value); only the
    codec writes it as a TLV: extension_type U16 LE, field_type U8, then ``value``, whose
    U16 length prefix is the TLV's Length.  Little-endian like every SV2 integer and like
    SRI's parsers-sv2 (the spec's example prints the type and length big-endian).
    """
    return Sv2Type(f"TLV[0x{extension_type:04x}:0x{field_type:02x}]", "seq",
                   f"TLV field {extension_type:#06x}/{field_type:#04x} (optional)",
                   len_size=1, max_len=1, elem=value, c_type="seq",
                   tlv=(extension_type, field_type))


#: TLV value of user_identity (extension 0x0002): up to 32 bytes of text; its U16 length
#: prefix is the TLV's Length field
TLV_STR0_32 = _bytes("TLV_STR0_32", 2, 32, "TLV value: text of up to 32 bytes (U16 length)",
                     text=True)

PRIMITIVES = (U8, U16, U24, U32, U64, U256, BOOL, F32, STR0_255, B0_32, B0_255, B0_64K,
              B0_16M, PUBKEY, SIGNATURE)

# --------------------------------------------------------------------------------------
# Protocol-level constants
# --------------------------------------------------------------------------------------

#: SetupConnection.protocol values (spec 3.1); any other value is refused at decode time.
PROTOCOLS = {0: "MINING", 1: "JOB_DECLARATION", 2: "TEMPLATE_DISTRIBUTION"}

#: Extension ids with messages or TLV fields in this table (sv2-spec 09-Extensions.md)
EXTENSION_NEGOTIATION = 0x0001
WORKER_HASHRATE_TRACKING = 0x0002

#: SetupConnection(.Success/.Error).flags bits per protocol (spec 5.3.1, 6.4.1); bit 0 is
#: the least significant bit of the U32.  Template Distribution defines none.
SETUP_FLAGS = {
    "MINING_REQUIRES_STANDARD_JOBS": 1 << 0,
    "MINING_REQUIRES_WORK_SELECTION": 1 << 1,
    "MINING_REQUIRES_VERSION_ROLLING": 1 << 2,
    "MINING_SUCCESS_REQUIRES_FIXED_VERSION": 1 << 0,
    "MINING_SUCCESS_REQUIRES_EXTENDED_CHANNELS": 1 << 1,
    "JOB_DECLARATION_DECLARE_TX_DATA": 1 << 0,
}
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

    name: str  # spec name, e.g. "SetupConnection.Success"; unique in the table
    #: "common" | "mining" | "job_declaration" | "template_distribution" |
    #: "extensions_negotiation"
    protocol: str
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
    # ---- Mining Protocol (spec 5.3; ids and channel bits: spec 8) -----------------------
    MessageSpec(
        "OpenStandardMiningChannel", "mining", 0x10, False,
        "Open a standard channel: the server sends ready headers (NewMiningJob) for it.",
        (
            F("request_id", U32, "client-chosen id, unique per connection, echoed in the reply"),
            F("user_identity", STR0_255, "who the shares are for, e.g. braiinstest.worker1"),
            F("nominal_hash_rate", F32, "expected hashrate in h/s (0.0 with no device yet)"),
            F("max_target", U256, "largest target the device(s) accept"),
        )),
    MessageSpec(
        "OpenStandardMiningChannel.Success", "mining", 0x11, False,
        "A standard channel is open (not a channel message: the channel is new).",
        (
            F("request_id", U32, "request_id of the OpenStandardMiningChannel"),
            F("channel_id", U32, "the new channel's id, stable for the connection"),
            F("target", U256, "initial target of the channel"),
            F("extranonce_prefix", B0_32, "implicit first part of the extranonce"),
            F("group_channel_id", U32, "group channel the channel belongs to"),
        )),
    MessageSpec(
        "OpenMiningChannel.Error", "mining", 0x12, False,
        "Opening a standard or extended channel failed.",
        (
            F("request_id", U32, "request_id of the Open*MiningChannel"),
            F("error_code", STR0_255, "e.g. unknown-user, max-target-out-of-range"),
        )),
    MessageSpec(
        "OpenExtendedMiningChannel", "mining", 0x13, False,
        "Open an extended channel: the client builds coinbases and rolls its extranonce.",
        (
            F("request_id", U32, "client-chosen id, unique per connection, echoed in the reply"),
            F("user_identity", STR0_255, "who the shares are for"),
            F("nominal_hash_rate", F32, "expected hashrate in h/s"),
            F("max_target", U256, "largest target the device(s) accept"),
            F("min_extranonce_size", U16, "extranonce bytes the client needs at least"),
        )),
    MessageSpec(
        "OpenExtendedMiningChannel.Success", "mining", 0x14, False,
        "An extended channel is open.",
        (
            F("request_id", U32, "request_id of the OpenExtendedMiningChannel"),
            F("channel_id", U32, "the new channel's id, stable for the connection"),
            F("target", U256, "initial target of the channel"),
            F("extranonce_size", U16, "extranonce bytes the client rolls"),
            F("extranonce_prefix", B0_32, "implicit first part of the extranonce"),
            F("group_channel_id", U32, "group channel the channel belongs to"),
        )),
    MessageSpec(
        "NewMiningJob", "mining", 0x15, True,
        "A job for a standard channel: a ready merkle root (future job if min_ntime is absent).",
        (
            F("channel_id", U32, "standard channel the job is for"),
            F("job_id", U32, "server's job id, unique among the channel's valid jobs"),
            F("min_ntime", OPTION(U32), "smallest nTime; absent: a future job for a later "
              "SetNewPrevHash"),
            F("version", U32, "block header nVersion (BIP323 bits may be rolled)"),
            F("merkle_root", U256, "merkle root for the block header"),
        )),
    MessageSpec(
        "UpdateChannel", "mining", 0x16, True,
        "The client's hashrate or maximum target changed.",
        (
            F("channel_id", U32, "channel that changed"),
            F("nominal_hash_rate", F32, "new expected hashrate in h/s"),
            F("maximum_target", U256, "largest target the device(s) now accept"),
        )),
    MessageSpec(
        "UpdateChannel.Error", "mining", 0x17, True,
        "An UpdateChannel was refused (accepted ones get no reply).",
        (
            F("channel_id", U32, "channel of the UpdateChannel"),
            F("error_code", STR0_255, "e.g. invalid-nominal-hashrate"),
        )),
    MessageSpec(
        "CloseChannel", "mining", 0x18, True,
        "Close a channel (either side); closing a group channel closes its members.",
        (
            F("channel_id", U32, "channel to close"),
            F("reason_code", STR0_255, "why, printable ASCII"),
        )),
    MessageSpec(
        "SetExtranoncePrefix", "mining", 0x19, True,
        "A new extranonce prefix for the jobs that follow on a standard or extended channel.",
        (
            F("channel_id", U32, "standard or extended channel"),
            F("extranonce_prefix", B0_32, "implicit first part of the extranonce"),
        )),
    MessageSpec(
        "SubmitSharesStandard", "mining", 0x1A, True,
        "A share found on a standard channel.",
        (
            F("channel_id", U32, "channel the share was found on"),
            F("sequence_number", U32, "submit counter within the channel"),
            F("job_id", U32, "job the share is for"),
            F("nonce", U32, "header nonce"),
            F("ntime", U32, "header nTime"),
            F("version", U32, "full header nVersion"),
        )),
    MessageSpec(
        "SubmitSharesExtended", "mining", 0x1B, True,
        "A share found on an extended channel, with the extranonce the client rolled.",
        (
            F("channel_id", U32, "channel the share was found on"),
            F("sequence_number", U32, "submit counter within the channel"),
            F("job_id", U32, "job the share is for"),
            F("nonce", U32, "header nonce"),
            F("ntime", U32, "header nTime"),
            F("version", U32, "full header nVersion"),
            F("extranonce", B0_32, "extranonce the client rolled (negotiated size)"),
            F("user_identity", TLV(WORKER_HASHRATE_TRACKING, 0x01, TLV_STR0_32),
              "worker name, a TLV field of extension 0x0002 (Worker-Specific Hashrate "
              "Tracking) sent once that extension is negotiated; absent otherwise"),
        )),
    MessageSpec(
        "SubmitShares.Success", "mining", 0x1C, True,
        "Shares accepted (possibly a batch of submits acknowledged together).",
        (
            F("channel_id", U32, "channel of the shares"),
            F("last_sequence_number", U32, "most recent sequence number accepted"),
            F("new_submits_accepted_count", U32, "submits acknowledged in this batch"),
            F("new_shares_sum", U64, "sum of the difficulty of those shares"),
        )),
    MessageSpec(
        "SubmitShares.Error", "mining", 0x1D, True,
        "A share was refused.",
        (
            F("channel_id", U32, "channel of the share"),
            F("sequence_number", U32, "sequence number of the refused submit"),
            F("error_code", STR0_255, "e.g. stale-share, difficulty-too-low"),
        )),
    MessageSpec(
        "NewExtendedMiningJob", "mining", 0x1F, True,
        "A job for an extended or group channel: coinbase halves and merkle path.",
        (
            F("channel_id", U32, "extended channel, or group channel (broadcast)"),
            F("job_id", U32, "server's job id, unique among the channel's valid jobs"),
            F("min_ntime", OPTION(U32), "smallest nTime; absent: a future job for a later "
              "SetNewPrevHash"),
            F("version", U32, "block header nVersion"),
            F("version_rolling_allowed", BOOL, "true: the BIP323 bits of version may be rolled"),
            F("merkle_path", SEQ0_255(U256), "coinbase merkle branch, deepest first"),
            F("coinbase_tx_prefix", B0_64K, "coinbase bytes before the extranonce (no BIP141 "
              "fields)"),
            F("coinbase_tx_suffix", B0_64K, "coinbase bytes after the extranonce"),
        )),
    MessageSpec(
        "MiningSetNewPrevHash", "mining", 0x20, True,
        "The Mining Protocol's SetNewPrevHash (the spec names it SetNewPrevHash, like the "
        "TDP message 0x72; SRI's constant is MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH): a new "
        "tip, mine the future job it names.",
        (
            F("channel_id", U32, "channel or group channel it is valid for"),
            F("job_id", U32, "future job to mine on this prev_hash"),
            F("prev_hash", U256, "previous block hash as in the header"),
            F("min_ntime", U32, "smallest nTime to hash"),
            F("nbits", U32, "header nBits"),
        )),
    MessageSpec(
        "SetTarget", "mining", 0x21, True,
        "A new maximum target for a channel (applies to its future jobs).",
        (
            F("channel_id", U32, "channel (or group channel) the target is for"),
            F("maximum_target", U256, "largest hash accepted as a share"),
        )),
    MessageSpec(
        "SetCustomMiningJob", "mining", 0x22, True,
        "A job the client built itself (job declaration), for an extended or group channel.",
        (
            F("channel_id", U32, "extended channel"),
            F("request_id", U32, "client-chosen id, echoed in the reply"),
            F("mining_job_token", B0_255, "token from the job declarator for this job (SRI "
              "names the field token)"),
            F("version", U32, "block header nVersion"),
            F("prev_hash", U256, "previous block hash as in the header"),
            F("min_ntime", U32, "smallest nTime to hash"),
            F("nbits", U32, "header nBits"),
            F("coinbase_tx_version", U32, "coinbase nVersion"),
            F("coinbase_prefix", B0_255, "start of the coinbase scriptSig (up to 8 bytes)"),
            F("coinbase_tx_input_n_sequence", U32, "coinbase input nSequence (spec: "
              "coinbase_tx_input_nSequence)"),
            F("coinbase_tx_outputs", B0_64K, "coinbase outputs, CompactSize-prefixed array"),
            F("coinbase_tx_locktime", U32, "coinbase nLockTime"),
            F("merkle_path", SEQ0_255(U256), "coinbase merkle branch, deepest first"),
        )),
    MessageSpec(
        "SetCustomMiningJob.Success", "mining", 0x23, True,
        "The pool accepts the custom job and commits to rewarding it.",
        (
            F("channel_id", U32, "extended channel"),
            F("request_id", U32, "request_id of the SetCustomMiningJob"),
            F("job_id", U32, "job id to submit shares with"),
        )),
    MessageSpec(
        "SetCustomMiningJob.Error", "mining", 0x24, True,
        "The pool refuses the custom job.",
        (
            F("channel_id", U32, "extended channel"),
            F("request_id", U32, "request_id of the SetCustomMiningJob"),
            F("error_code", STR0_255, "e.g. invalid-mining-job-token, stale-chain-tip"),
        )),
    MessageSpec(
        "SetGroupChannel", "mining", 0x25, False,
        "Put channels into a group channel (jobs for the group reach them all).",
        (
            F("group_channel_id", U32, "the group channel"),
            F("channel_ids", SEQ0_64K(U32), "standard or extended channels in the group"),
        )),
    # ---- Job Declaration Protocol (spec 6.4) ---------------------------------------------
    MessageSpec(
        "AllocateMiningJobToken", "job_declaration", 0x50, False,
        "Ask the job declarator for a token to declare a future job with.",
        (
            F("user_identifier", STR0_255, "who asks, as the pool knows the client"),
            F("request_id", U32, "client-chosen id, echoed in the reply"),
        )),
    MessageSpec(
        "AllocateMiningJobToken.Success", "job_declaration", 0x51, False,
        "A token, and the coinbase outputs the pool needs in the jobs declared with it.",
        (
            F("request_id", U32, "request_id of the AllocateMiningJobToken"),
            F("mining_job_token", B0_255, "token for DeclareMiningJob / SetCustomMiningJob"),
            F("coinbase_tx_outputs", B0_64K, "pool's outputs, first = pool payout (SRI names "
              "the field coinbase_outputs)"),
        )),
    MessageSpec(
        "ProvideMissingTransactions", "job_declaration", 0x55, False,
        "The job declarator lacks some transactions of a declared job: which ones.",
        (
            F("request_id", U32, "request_id of the DeclareMiningJob"),
            F("unknown_tx_position_list", SEQ0_64K(U16),
              "0-based positions in DeclareMiningJob.wtxid_list"),
        )),
    MessageSpec(
        "ProvideMissingTransactions.Success", "job_declaration", 0x56, False,
        "The transactions the job declarator asked for, in the order asked.",
        (
            F("request_id", U32, "request_id of the DeclareMiningJob"),
            F("transaction_list", SEQ0_64K(B0_16M), "full transactions"),
        )),
    MessageSpec(
        "DeclareMiningJob", "job_declaration", 0x57, False,
        "Propose a job (coinbase and transaction set) to the job declarator.",
        (
            F("request_id", U32, "client-chosen id, echoed in the reply"),
            F("mining_job_token", B0_255, "token from AllocateMiningJobToken.Success"),
            F("version", U32, "block header nVersion"),
            F("coinbase_tx_prefix", B0_64K, "coinbase bytes before the extranonce (with "
              "BIP141 fields)"),
            F("coinbase_tx_suffix", B0_64K, "coinbase bytes after the extranonce"),
            F("wtxid_list", SEQ0_64K(U256), "wtxids of the template's transactions, no "
              "coinbase"),
            F("excess_data", B0_64K, "extra data the pool may need (from the TDP)"),
        )),
    MessageSpec(
        "DeclareMiningJob.Success", "job_declaration", 0x58, False,
        "The job declarator accepts the declared job.",
        (
            F("request_id", U32, "request_id of the DeclareMiningJob"),
            F("new_mining_job_token", B0_255, "token to use in SetCustomMiningJob"),
        )),
    MessageSpec(
        "DeclareMiningJob.Error", "job_declaration", 0x59, False,
        "The job declarator refuses the declared job.",
        (
            F("request_id", U32, "request_id of the DeclareMiningJob"),
            F("error_code", STR0_255, "e.g. invalid-mining-job-token, missing-txs"),
            F("error_details", B0_64K, "optional details"),
        )),
    MessageSpec(
        "PushSolution", "job_declaration", 0x60, False,
        "A block found on the last declared job, so the job declarator propagates it too.",
        (
            F("extranonce", B0_32, "the full extranonce"),
            F("prev_hash", U256, "previous block hash (spec: prev hash)"),
            F("nonce", U32, "header nonce"),
            F("ntime", U32, "header nTime"),
            F("nbits", U32, "header nBits"),
            F("version", U32, "header nVersion"),
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
    # ---- extension 0x0001: Extensions Negotiation (sv2-spec extensions/0x0001) ----------
    # Same msg_types as SetupConnection*; the frame's extension_type tells them apart.
    MessageSpec(
        "RequestExtensions", "extensions_negotiation", 0x00, False,
        "Right after SetupConnection.Success: the extensions the client wants to use.",
        (
            F("request_id", U16, "client-chosen id, echoed in the reply"),
            F("requested_extensions", SEQ0_64K(U16), "extension ids"),
        ), extension_type=EXTENSION_NEGOTIATION),
    MessageSpec(
        "RequestExtensions.Success", "extensions_negotiation", 0x01, False,
        "The requested extensions the server supports.",
        (
            F("request_id", U16, "request_id of the RequestExtensions"),
            F("supported_extensions", SEQ0_64K(U16), "extension ids"),
        ), extension_type=EXTENSION_NEGOTIATION),
    MessageSpec(
        "RequestExtensions.Error", "extensions_negotiation", 0x02, False,
        "None of the requested extensions is supported, or the server requires others.",
        (
            F("request_id", U16, "request_id of the RequestExtensions"),
            F("unsupported_extensions", SEQ0_64K(U16), "requested ids the server lacks"),
            F("required_extensions", SEQ0_64K(U16), "ids the server requires but the "
              "client did not request"),
        ), extension_type=EXTENSION_NEGOTIATION),
)

MESSAGES_BY_NAME = {m.name: m for m in MESSAGES}
MESSAGES_BY_KEY = {(m.extension_type, m.msg_type): m for m in MESSAGES}
#: extension_type values whose frames this table can decode; frames of any other
#: extension are discarded unread (spec 3.4.1: unknown extensions are ignored)
KNOWN_EXTENSIONS = frozenset(m.extension_type for m in MESSAGES)
#: A message union member must fit this many bytes: the C header reserves it, so adding
#: a message never changes sizeof(Sv2Message) (tests/test_header.py checks every struct)
C_UNION_RESERVED = 256


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
        seen_default = seen_tlv = False
        for f in m.fields:
            if f.type.tlv is not None:
                seen_tlv = True
                assert f.type.elem.kind == "bytes" and f.type.elem.len_size == 2, \
                    f"{m.name}.{f.name}: a TLV value is a byte string with a U16 length"
                continue
            assert not seen_tlv, f"{m.name}: TLV fields come after every other field"
            if f.absent_default is not None:
                seen_default = True
            else:
                assert not seen_default, f"{m.name}: absent_default fields must be trailing"
        tlvs = [f.type.tlv for f in m.fields if f.type.tlv is not None]
        assert len(tlvs) == len(set(tlvs)), f"{m.name}: a TLV type appears twice"
        assert not (tlvs and seen_default), f"{m.name}: TLV fields and absent defaults mix"


_check_table()

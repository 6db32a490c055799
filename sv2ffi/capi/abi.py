"""Facts of the C ABI (libsv2, ABI version 1) that the schema does not hold.

The schema describes messages; this module describes the C surface around them: status
codes, named constants, opaque handle types, helper structs and every exported function
(name, C signature, doc, and whether Python or C implements it).  ``render`` turns it,
together with the schema, into the header, the cffi declarations and the C wrappers, so
the C API is written down once.

This module must import nothing beyond the schema: it runs inside the isolated build
environment of ``pip install .`` where cryptography and coincurve are absent.  Facts
that live in other modules (Noise sizes in ``noise.py``, key sizes in ``keys.py``) are
repeated here as literals and cross-checked by ``tests/test_header.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import schema

ABI_VERSION = 1

# ---- status codes ----------------------------------------------------------------------

#: (name, value, doc) in header order.  Error names are the ``status`` attributes of the
#: classes in ``sv2ffi.errors``; a test walks that module and fails on an unknown name.
STATUS_CODES: tuple[tuple[str, int, str], ...] = (
    ("SV2_OK", 0, "success"),
    ("SV2_NEED_MORE_DATA", 1, "nothing to return yet: feed more bytes, then call again"),
    ("SV2_ERR_INVALID_ARGUMENT", -1,
     "a NULL or dangling handle, a NULL pointer, or a message field whose value does not "
     "fit its SV2 type"),
    ("SV2_ERR_INVALID_FRAME", -2, "bytes that are not a well-formed SV2 frame"),
    ("SV2_ERR_UNKNOWN_MESSAGE", -3,
     "a frame of an unknown message type; it was consumed, the stream stays usable"),
    ("SV2_ERR_DECODE", -4, "a payload that does not decode as its message type"),
    ("SV2_ERR_PAYLOAD_TOO_BIG", -5, "a frame larger than the limit; the stream is unusable"),
    ("SV2_ERR_HANDSHAKE", -6, "the Noise handshake failed; drop the connection"),
    ("SV2_ERR_DECRYPTION", -7, "an encrypted frame failed authentication; drop the connection"),
    ("SV2_ERR_CLOSED", -8, "the connection was closed or failed before and cannot be used"),
    ("SV2_ERR_INTERNAL", -9, "a bug or resource failure inside libsv2 (see sv2_last_error)"),
)
STATUS: dict[str, int] = {name: value for name, value, _ in STATUS_CODES}
STATUS_NAMES: dict[int, str] = {value: name for name, value, _ in STATUS_CODES}

# ---- sizes and constants ---------------------------------------------------------------

KEY_SIZE = 32  # secp256k1 secret key, BIP340 x-only public key
NOISE_ELLSWIFT_SIZE = 64
NOISE_MAC_SIZE = 16
CERTIFICATE_SIZE = 74  # version U16 + valid_from U32 + not_valid_after U32 + signature 64
NOISE_ACT1_SIZE = NOISE_ELLSWIFT_SIZE
NOISE_ACT2_SIZE = (NOISE_ELLSWIFT_SIZE + (NOISE_ELLSWIFT_SIZE + NOISE_MAC_SIZE)
                   + (CERTIFICATE_SIZE + NOISE_MAC_SIZE))
NOISE_MAX_CT_CHUNK = 65535
NOISE_MAX_PT_CHUNK = NOISE_MAX_CT_CHUNK - NOISE_MAC_SIZE
NOISE_HEADER_CT_SIZE = schema.FRAME_HEADER_SIZE + NOISE_MAC_SIZE
#: base58check text of 2 version bytes + 32 key bytes + 4 checksum bytes, plus the NUL
AUTHORITY_PUBKEY_TEXT_SIZE = math.ceil((2 + KEY_SIZE + 4) * math.log(256) / math.log(58)) + 1


@dataclass(frozen=True)
class Constant:
    name: str  # without the SV2_ prefix
    value: object  # int or str
    doc: str
    hex: bool = False


def constants() -> list[tuple[str, list[Constant]]]:
    """Named constants by header section, all derived from schema and the facts above."""
    protocols = [Constant(f"PROTOCOL_{name}", value, f"SetupConnection.protocol {value}")
                 for value, name in sorted(schema.PROTOCOLS.items())]
    channel_bits = [Constant(f"CHANNEL_BIT_{m.const_name}",
                             schema.CHANNEL_BIT if m.channel_msg else 0,
                             f"{m.name}: bit to set in extension_type ("
                             f"{'a channel message' if m.channel_msg else 'not a channel message'})",
                             hex=True)
                    for m in schema.MESSAGES]
    error_codes = [Constant(f"ERROR_CODE_{name}", text, "error_code string")
                   for name, text in schema.ERROR_CODES.items()]
    flags = [Constant(f"FLAG_{name}", bit, "SetupConnection" + (".Success" if "SUCCESS" in name
                                                                else "") + ".flags bit",
                      hex=True)
             for name, bit in schema.SETUP_FLAGS.items()]
    extensions = [
        Constant("EXTENSION_NEGOTIATION", schema.EXTENSION_NEGOTIATION,
                 "extension_type of RequestExtensions and its replies", hex=True),
        Constant("EXTENSION_WORKER_HASHRATE_TRACKING", schema.WORKER_HASHRATE_TRACKING,
                 "extension adding user_identity (a TLV) to SubmitSharesExtended", hex=True),
    ]
    return [
        ("ABI", [Constant("ABI_VERSION", ABI_VERSION, "what sv2_abi_version() returns")]),
        ("Frames", [
            Constant("FRAME_HEADER_SIZE", schema.FRAME_HEADER_SIZE,
                     "extension_type U16 | msg_type U8 | length U24"),
            Constant("MAX_PAYLOAD", schema.MAX_PAYLOAD, "largest payload a frame header can carry"),
            Constant("CHANNEL_BIT", schema.CHANNEL_BIT, "channel_msg bit of extension_type",
                     hex=True),
            Constant("EXTENSION_TYPE_MASK", schema.EXTENSION_TYPE_MASK,
                     "extension_type without the channel bit", hex=True),
        ]),
        ("Noise and keys", [
            Constant("KEY_SIZE", KEY_SIZE, "secret key or BIP340 x-only public key"),
            Constant("CERTIFICATE_SIZE", CERTIFICATE_SIZE,
                     "SIGNATURE_NOISE_MESSAGE: version, validity, Schnorr signature"),
            Constant("NOISE_ELLSWIFT_SIZE", NOISE_ELLSWIFT_SIZE, "ElligatorSwift public key"),
            Constant("NOISE_MAC_SIZE", NOISE_MAC_SIZE, "ChaCha20-Poly1305 tag"),
            Constant("NOISE_ACT1_SIZE", NOISE_ACT1_SIZE, "handshake act 1 (initiator -> responder)"),
            Constant("NOISE_ACT2_SIZE", NOISE_ACT2_SIZE, "handshake act 2 (responder -> initiator)"),
            Constant("NOISE_HEADER_CT_SIZE", NOISE_HEADER_CT_SIZE, "encrypted frame header"),
            Constant("NOISE_MAX_CT_CHUNK", NOISE_MAX_CT_CHUNK, "largest encrypted chunk"),
            Constant("NOISE_MAX_PT_CHUNK", NOISE_MAX_PT_CHUNK, "plaintext bytes per chunk"),
            Constant("AUTHORITY_PUBKEY_TEXT_SIZE", AUTHORITY_PUBKEY_TEXT_SIZE,
                     "buffer size for an authority public key in text form, with the NUL"),
        ]),
        ("Protocol values", protocols + [
            Constant("PROTOCOL_VERSION", schema.PROTOCOL_VERSION,
                     "the protocol version SetupConnection must include"),
            Constant("LEGACY_COINBASE_SIGOPS", schema.LEGACY_COINBASE_SIGOPS,
                     "sigops assumed for the 4-byte legacy CoinbaseOutputConstraints"),
        ] + flags + extensions + error_codes),
        ("Channel bits", channel_bits),
    ]


# ---- opaque handles, typedefs and helper structs ---------------------------------------------

#: (full C declaration without the ';', doc) rendered before the helper structs, e.g. a
#: callback type: ("typedef void (*Sv2SolutionCallback)(void *user, ...)", "...").
#: Issue 6 (embedded TP) adds its solution callback here.
TYPEDEFS: tuple[tuple[str, str], ...] = (
    ("typedef void (*Sv2TpSolutionCallback)(void *user, const uint8_t *block, size_t len)",
     "Called with each solved block (serialized, witness included) after the library "
     "wrote it to the data directory. Runs on a library thread, one call at a time; block "
     "is valid only during the call. It may call sv2_tp_push_template, never sv2_tp_stop "
     "or sv2_tp_free."),
)

#: (type name, doc).  Issue 6 appends Sv2Tp here.
OPAQUE_TYPES: tuple[tuple[str, str], ...] = (
    ("Sv2Decoder", "streaming frame decoder (plain framing); sv2_decoder_new / _free"),
    ("Sv2Connection", "one connection, Noise or plain, sans-I/O; sv2_connection_new_* / _free"),
    ("Sv2Tp", "an embedded template provider serving SV2 clients from a library thread; "
              "sv2_tp_new / _free"),
)


@dataclass(frozen=True)
class StructField:
    ctype: str
    name: str
    suffix: str = ""  # array part of the declarator, e.g. "[32]"
    doc: str = ""


@dataclass(frozen=True)
class Struct:
    name: str
    doc: str
    fields: tuple[StructField, ...]


KEYPAIR = Struct("Sv2Keypair", "A secp256k1 key pair: secret key and BIP340 x-only public key.", (
    StructField("uint8_t", "secret", "[32]", "secret key; keep it private"),
    StructField("uint8_t", "pubkey", "[32]", "x-only public key"),
))
RESPONDER_KEYS = Struct(
    "Sv2ResponderKeys",
    "What a Noise responder (server) needs: its static key and a certificate for it, "
    "either given or issued here with the authority secret key.", (
        StructField("uint8_t", "static_secret", "[32]", "the server's static secret key"),
        StructField("uint8_t", "authority_secret", "[32]",
                    "authority secret key; signs a certificate when certificate is NULL"),
        StructField("const uint8_t *", "certificate", "",
                    "SV2_CERTIFICATE_SIZE bytes issued by the authority, or NULL"),
        StructField("uint32_t", "validity", "",
                    "seconds an issued certificate stays valid; 0 means one hour"),
    ))
TP_CONFIG = Struct(
    "Sv2TpConfig",
    "How to run an embedded template provider (sv2_tp_new copies it; strings may be freed "
    "afterwards). Zero-initialise it and set what you need.", (
        StructField("const char *", "bind_address", "",
                    "address to listen on; NULL means \"127.0.0.1\""),
        StructField("uint16_t", "port", "", "port to listen on; 0 picks a free one (sv2_tp_port)"),
        StructField("const char *", "network", "",
                    "\"main\", \"test\", \"testnet4\", \"signet\" or \"regtest\" "
                    "(required: subsidy and difficulty rules follow it)"),
        StructField("const char *", "datadir", "",
                    "directory for the Noise keys (created once, mode 0600) and the solved "
                    "blocks (solved-blocks/); created if missing"),
        StructField("uint64_t", "fee_delta", "",
                    "sat the fees of a pushed template must add before clients get it as an "
                    "update (same tip); 0 sends every fee increase"),
        StructField("uint32_t", "template_interval_ms", "",
                    "minimum milliseconds between fee-driven updates; new tips never wait"),
        StructField("Sv2TpSolutionCallback", "on_solution", "",
                    "receives every solved block; NULL: blocks are only written to datadir"),
        StructField("void *", "user", "", "passed to on_solution as is"),
    ))
#: helper structs rendered after the message types, in this order
HELPER_STRUCTS: tuple[Struct, ...] = (KEYPAIR, RESPONDER_KEYS, TP_CONFIG)

# ---- exported functions -----------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    ctype: str  # e.g. "const uint8_t *" or "const uint8_t"
    name: str
    suffix: str = ""  # e.g. "[32]"

    def decl(self) -> str:
        sep = "" if self.ctype.endswith("*") else " "
        return f"{self.ctype}{sep}{self.name}{self.suffix}"


@dataclass(frozen=True)
class Function:
    name: str  # public C name, sv2_...
    ret: str
    params: tuple[Param, ...]
    doc: str
    group: str
    impl: str = "python"  # "python": extern "Python" + generated C wrapper; "c": C code
    #: part of the codec: implemented in the generated sv2_codec.c, declared in sv2_codec.h
    codec: bool = False

    @property
    def internal_name(self) -> str:
        """The cffi extern "Python" entry point the public C wrapper calls."""
        return "sv2i_py_" + self.name[len("sv2_"):]

    def decl(self, name: str | None = None) -> str:
        params = ", ".join(p.decl() for p in self.params) or "void"
        sep = "" if self.ret.endswith("*") else " "
        return f"{self.ret}{sep}{name or self.name}({params})"


def _p(ctype: str, name: str, suffix: str = "") -> Param:
    return Param(ctype, name, suffix)


FUNCTIONS: tuple[Function, ...] = (
    # ---- library ------------------------------------------------------------------------
    Function("sv2_abi_version", "int", (), "Returns SV2_ABI_VERSION of the loaded library; "
             "compare it with the header's at start-up.", "Library", impl="c"),
    Function("sv2_last_error", "const char *", (),
             "The message of the last failure on the calling thread (\"\" if none). "
             "Valid until the next failing call on this thread; successful calls leave it.",
             "Library", impl="c", codec=True),
    Function("sv2_status_name", "const char *", (_p("Sv2Status", "status"),),
             "The constant's name (\"SV2_ERR_DECODE\"), or \"SV2_UNKNOWN_STATUS\".",
             "Library", impl="c", codec=True),
    Function("sv2_bytes_free", "void", (_p("Sv2Bytes *", "bytes"),),
             "Frees bytes the library returned and sets data = NULL, len = 0. NULL is ignored.",
             "Library", impl="c", codec=True),
    Function("sv2_message_free", "void", (_p("Sv2Message *", "msg"),),
             "Frees the buffers of a message the library returned and zeroes it. Only for "
             "messages from sv2_decode / sv2_decoder_next / sv2_connection_next. NULL is "
             "ignored.", "Library", impl="c", codec=True),
    # ---- codec: plain C, never starts Python --------------------------------------------
    Function("sv2_encode", "Sv2Status",
             (_p("const Sv2Message *", "msg"), _p("Sv2Bytes *", "frame")),
             "Encodes msg as one plaintext frame (header + payload) into *frame, which the "
             "caller frees with sv2_bytes_free. msg is only read. On failure *frame is "
             "{NULL, 0}.", "Codec", impl="c", codec=True),
    Function("sv2_encoded_size", "Sv2Status",
             (_p("const Sv2Message *", "msg"), _p("size_t *", "size")),
             "The size of the frame sv2_encode / sv2_encode_into would make of msg (header "
             "included), after the same checks. On failure *size is 0.", "Codec", impl="c",
             codec=True),
    Function("sv2_encode_into", "Sv2Status",
             (_p("const Sv2Message *", "msg"), _p("uint8_t *", "buf"), _p("size_t", "cap"),
              _p("size_t *", "written")),
             "Encodes msg as one frame into the caller's buf of cap bytes, no allocation; "
             "*written is the frame's size. If cap is too small: SV2_ERR_INVALID_ARGUMENT, "
             "*written is the size needed and buf is untouched.", "Codec", impl="c",
             codec=True),
    Function("sv2_decode", "Sv2Status",
             (_p("const uint8_t *", "data"), _p("size_t", "len"), _p("Sv2Message *", "out"),
              _p("size_t *", "consumed")),
             "Decodes the frame at the start of data (len bytes, possibly more than one "
             "frame): SV2_OK with the message in *out (free it with sv2_message_free) and "
             "the frame's size in *consumed; SV2_NEED_MORE_DATA (*consumed 0) if data holds "
             "no whole frame; on SV2_ERR_UNKNOWN_MESSAGE or SV2_ERR_DECODE *consumed is the "
             "bad frame's size, so the caller can skip it. No allocation for messages "
             "without variable-size fields.", "Codec", impl="c", codec=True),
    Function("sv2_decoder_new", "Sv2Decoder *", (),
             "A streaming decoder for plaintext frames, or NULL on failure.", "Codec",
             impl="c", codec=True),
    Function("sv2_decoder_new_with_limit", "Sv2Decoder *", (_p("size_t", "max_payload"),),
             "A streaming decoder that refuses frames with more than max_payload payload "
             "bytes (SV2_ERR_PAYLOAD_TOO_BIG, before buffering them), for peers that must "
             "not make it hold up to 16 MiB. NULL if max_payload > SV2_MAX_PAYLOAD.",
             "Codec", impl="c", codec=True),
    Function("sv2_decoder_feed", "Sv2Status",
             (_p("Sv2Decoder *", "dec"), _p("const uint8_t *", "data"), _p("size_t", "len")),
             "Buffers len bytes (any chunking: a byte, a frame, many frames). data is copied.",
             "Codec", impl="c", codec=True),
    Function("sv2_decoder_next", "Sv2Status",
             (_p("Sv2Decoder *", "dec"), _p("Sv2Message *", "out")),
             "SV2_OK with the next message in *out (free it with sv2_message_free), "
             "SV2_NEED_MORE_DATA until a whole frame is buffered, or an error. Frames of an "
             "extension without messages here are skipped. After SV2_ERR_UNKNOWN_MESSAGE or "
             "SV2_ERR_DECODE the bad frame is consumed and the next call continues; after "
             "SV2_ERR_PAYLOAD_TOO_BIG the decoder stays failed.", "Codec", impl="c",
             codec=True),
    Function("sv2_decoder_free", "void", (_p("Sv2Decoder *", "dec"),),
             "Frees the decoder. NULL is ignored.", "Codec", impl="c", codec=True),
    # ---- connection ---------------------------------------------------------------------
    Function("sv2_connection_new_initiator", "Sv2Connection *",
             (_p("const uint8_t", "authority_pubkey", "[32]"),),
             "A Noise initiator (client). authority_pubkey is the x-only key the server's "
             "certificate must be signed by, or NULL to skip that check. Act 1 is queued: "
             "send what sv2_connection_take_output returns. NULL on failure.", "Connection"),
    Function("sv2_connection_new_responder", "Sv2Connection *",
             (_p("const Sv2ResponderKeys *", "keys"),),
             "A Noise responder (server) with the given keys. NULL on failure.", "Connection"),
    Function("sv2_connection_new_plain", "Sv2Connection *", (),
             "A connection without encryption (plain SV2 framing). NULL on failure.",
             "Connection"),
    Function("sv2_connection_feed", "Sv2Status",
             (_p("Sv2Connection *", "conn"), _p("const uint8_t *", "data"), _p("size_t", "len")),
             "Processes bytes read from the socket: handshake acts (replies are queued for "
             "sv2_connection_take_output) and frames (messages queued for "
             "sv2_connection_next). data is copied. Any error makes the connection unusable.",
             "Connection"),
    Function("sv2_connection_next", "Sv2Status",
             (_p("Sv2Connection *", "conn"), _p("Sv2Message *", "out")),
             "SV2_OK with the next received message in *out (free it with "
             "sv2_message_free), or SV2_NEED_MORE_DATA when none is queued.", "Connection"),
    Function("sv2_connection_send", "Sv2Status",
             (_p("Sv2Connection *", "conn"), _p("const Sv2Message *", "msg")),
             "Queues msg (encrypted under Noise) for sv2_connection_take_output. msg is only "
             "read. SV2_ERR_HANDSHAKE before the handshake finished.", "Connection"),
    Function("sv2_connection_take_output", "Sv2Status",
             (_p("Sv2Connection *", "conn"), _p("Sv2Bytes *", "out")),
             "Moves every queued byte (handshake acts, frames) into *out, in order; write "
             "them to the socket, then sv2_bytes_free. {NULL, 0} when nothing is queued.",
             "Connection"),
    Function("sv2_connection_is_established", "bool", (_p("const Sv2Connection *", "conn"),),
             "true once the handshake finished (always for plain connections).",
             "Connection"),
    Function("sv2_connection_remote_pubkey", "Sv2Status",
             (_p("const Sv2Connection *", "conn"), _p("uint8_t", "out", "[32]")),
             "The server's static x-only key (initiators, after the handshake).",
             "Connection"),
    Function("sv2_connection_free", "void", (_p("Sv2Connection *", "conn"),),
             "Frees the connection. NULL is ignored.", "Connection"),
    # ---- keys ---------------------------------------------------------------------------
    Function("sv2_keypair_generate", "Sv2Status", (_p("Sv2Keypair *", "out"),),
             "A fresh key pair from the operating system's random source.", "Keys"),
    Function("sv2_keypair_from_secret", "Sv2Status",
             (_p("const uint8_t", "secret", "[32]"), _p("Sv2Keypair *", "out")),
             "The key pair of a secret key (SV2_ERR_INVALID_ARGUMENT if not a valid key).",
             "Keys"),
    Function("sv2_authority_pubkey_to_text", "Sv2Status",
             (_p("const uint8_t", "pubkey", "[32]"), _p("char *", "out"), _p("size_t", "cap")),
             "Writes the base58check text form of an authority x-only key, NUL-terminated, "
             "into out (cap >= SV2_AUTHORITY_PUBKEY_TEXT_SIZE always suffices).", "Keys"),
    Function("sv2_authority_pubkey_from_text", "Sv2Status",
             (_p("const char *", "text"), _p("uint8_t", "out", "[32]")),
             "Parses the base58check text form; SV2_ERR_INVALID_ARGUMENT on a bad checksum, "
             "version or length.", "Keys"),
    # ---- embedded template provider ---------------------------------------------------
    Function("sv2_tp_new", "Sv2Tp *", (_p("const Sv2TpConfig *", "cfg"),),
             "An embedded template provider (not listening yet). Loads or creates the Noise "
             "keys in cfg->datadir, so sv2_tp_authority_pubkey works at once. NULL on "
             "failure (a bad network name, an unusable datadir).", "Embedded template provider"),
    Function("sv2_tp_start", "Sv2Status", (_p("Sv2Tp *", "tp"),),
             "Starts serving on a library thread; returns once the socket listens. "
             "SV2_ERR_INVALID_ARGUMENT if the address cannot be bound, SV2_ERR_CLOSED after "
             "sv2_tp_stop or a failed start (create a new one).",
             "Embedded template provider"),
    Function("sv2_tp_port", "uint16_t", (_p("const Sv2Tp *", "tp"),),
             "The port it listens on (after sv2_tp_start), else the configured port; 0 for an "
             "invalid handle.", "Embedded template provider"),
    Function("sv2_tp_authority_pubkey", "Sv2Status",
             (_p("const Sv2Tp *", "tp"), _p("char *", "out"), _p("size_t", "cap")),
             "Writes the authority public key (base58check text, what clients configure) into "
             "out, NUL-terminated; cap >= SV2_AUTHORITY_PUBKEY_TEXT_SIZE always suffices.",
             "Embedded template provider"),
    Function("sv2_tp_push_template", "Sv2Status",
             (_p("Sv2Tp *", "tp"), _p("const uint8_t *", "block"), _p("size_t", "len")),
             "Hands the provider a block template serialized as a block: header (prev hash, "
             "time, nBits, version), a placeholder coinbase whose scriptSig starts with the "
             "BIP34 height and whose only non-OP_RETURN output is worth subsidy + fees, "
             "OP_RETURN outputs such as the witness commitment, then the transactions. A new "
             "previous-block hash is a new tip: clients get SetNewPrevHash for the empty "
             "template announced in advance before this template is even parsed in full. "
             "block is copied. Any thread, also from on_solution. SV2_ERR_INVALID_ARGUMENT "
             "for a malformed template (sv2_last_error says what is wrong), SV2_ERR_CLOSED "
             "after sv2_tp_stop. Before sv2_tp_start the last push is kept for the start.",
             "Embedded template provider"),
    Function("sv2_tp_stop", "Sv2Status", (_p("Sv2Tp *", "tp"),),
             "Disconnects every client, closes the socket and ends the library thread. "
             "Solutions already found are delivered first; once it returns, on_solution is "
             "never called again. Waits for a running on_solution: never call it holding a "
             "lock that on_solution takes. Calling it again does nothing.",
             "Embedded template provider"),
    Function("sv2_tp_free", "void", (_p("Sv2Tp *", "tp"),),
             "Stops it (as sv2_tp_stop) if running, then frees it. NULL is ignored.",
             "Embedded template provider"),
)

FUNCTIONS_BY_NAME = {f.name: f for f in FUNCTIONS}


def python_functions() -> list[Function]:
    return [f for f in FUNCTIONS if f.impl == "python"]


def failure_value(ret: str) -> str | None:
    """What a generated wrapper returns when Python could not run the call."""
    if ret == "Sv2Status":
        return "SV2_ERR_INTERNAL"
    if ret.endswith("*"):
        return "NULL"
    if ret == "bool":
        return "false"
    if ret in ("uint16_t", "uint32_t", "int"):
        return "0"
    if ret == "void":
        return None
    raise ValueError(f"no failure value for return type {ret}")

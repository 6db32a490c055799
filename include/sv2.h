/* sv2.h: the C API of libsv2 (sv2ffi), ABI version 1.
 *
 * GENERATED FILE, DO NOT EDIT. It is rendered from sv2ffi/schema.py and
 * sv2ffi/capi/abi.py by `python scripts/build_header.py`, and checked against them
 * by `python scripts/build_header.py --check` (CI and the pre-push hook).
 *
 * C11, usable unchanged from C++. Guide (ownership, threading, errors, example):
 * docs/c-api.md. Status: every function returning Sv2Status gives SV2_OK (0),
 * SV2_NEED_MORE_DATA (> 0) or an error (< 0) and then sv2_last_error() says why.
 */
#ifndef SV2_H
#define SV2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ABI --------------------------------------------------------------------------------- */

/** what sv2_abi_version() returns */
#define SV2_ABI_VERSION 1

/* ---- Frames ------------------------------------------------------------------------------ */

/** extension_type U16 | msg_type U8 | length U24 */
#define SV2_FRAME_HEADER_SIZE 6
/** largest payload a frame header can carry */
#define SV2_MAX_PAYLOAD 16777215
/** channel_msg bit of extension_type */
#define SV2_CHANNEL_BIT 0x8000
/** extension_type without the channel bit */
#define SV2_EXTENSION_TYPE_MASK 0x7fff

/* ---- Noise and keys ---------------------------------------------------------------------- */

/** secret key or BIP340 x-only public key */
#define SV2_KEY_SIZE 32
/** SIGNATURE_NOISE_MESSAGE: version, validity, Schnorr signature */
#define SV2_CERTIFICATE_SIZE 74
/** ElligatorSwift public key */
#define SV2_NOISE_ELLSWIFT_SIZE 64
/** ChaCha20-Poly1305 tag */
#define SV2_NOISE_MAC_SIZE 16
/** handshake act 1 (initiator -> responder) */
#define SV2_NOISE_ACT1_SIZE 64
/** handshake act 2 (responder -> initiator) */
#define SV2_NOISE_ACT2_SIZE 234
/** encrypted frame header */
#define SV2_NOISE_HEADER_CT_SIZE 22
/** largest encrypted chunk */
#define SV2_NOISE_MAX_CT_CHUNK 65535
/** plaintext bytes per chunk */
#define SV2_NOISE_MAX_PT_CHUNK 65519
/** buffer size for an authority public key in text form, with the NUL */
#define SV2_AUTHORITY_PUBKEY_TEXT_SIZE 53

/* ---- Protocol values --------------------------------------------------------------------- */

/** SetupConnection.protocol 0 */
#define SV2_PROTOCOL_MINING 0
/** SetupConnection.protocol 1 */
#define SV2_PROTOCOL_JOB_DECLARATION 1
/** SetupConnection.protocol 2 */
#define SV2_PROTOCOL_TEMPLATE_DISTRIBUTION 2
/** the protocol version SetupConnection must include */
#define SV2_PROTOCOL_VERSION 2
/** sigops assumed for the 4-byte legacy CoinbaseOutputConstraints */
#define SV2_LEGACY_COINBASE_SIGOPS 400
/** SetupConnection.flags bit */
#define SV2_FLAG_MINING_REQUIRES_STANDARD_JOBS 0x0001
/** SetupConnection.flags bit */
#define SV2_FLAG_MINING_REQUIRES_WORK_SELECTION 0x0002
/** SetupConnection.flags bit */
#define SV2_FLAG_MINING_REQUIRES_VERSION_ROLLING 0x0004
/** SetupConnection.Success.flags bit */
#define SV2_FLAG_MINING_SUCCESS_REQUIRES_FIXED_VERSION 0x0001
/** SetupConnection.Success.flags bit */
#define SV2_FLAG_MINING_SUCCESS_REQUIRES_EXTENDED_CHANNELS 0x0002
/** SetupConnection.flags bit */
#define SV2_FLAG_JOB_DECLARATION_DECLARE_TX_DATA 0x0001
/** extension_type of RequestExtensions and its replies */
#define SV2_EXTENSION_NEGOTIATION 0x0001
/** extension adding user_identity (a TLV) to SubmitSharesExtended */
#define SV2_EXTENSION_WORKER_HASHRATE_TRACKING 0x0002
/** error_code string */
#define SV2_ERROR_CODE_UNSUPPORTED_FEATURE_FLAGS "unsupported-feature-flags"
/** error_code string */
#define SV2_ERROR_CODE_UNSUPPORTED_PROTOCOL "unsupported-protocol"
/** error_code string */
#define SV2_ERROR_CODE_PROTOCOL_VERSION_MISMATCH "protocol-version-mismatch"
/** error_code string */
#define SV2_ERROR_CODE_TEMPLATE_ID_NOT_FOUND "template-id-not-found"
/** error_code string */
#define SV2_ERROR_CODE_STALE_TEMPLATE_ID "stale-template-id"

/* ---- Channel bits ------------------------------------------------------------------------ */

/** SetupConnection: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_SETUP_CONNECTION 0x0000
/** SetupConnection.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_SETUP_CONNECTION_SUCCESS 0x0000
/** SetupConnection.Error: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_SETUP_CONNECTION_ERROR 0x0000
/** ChannelEndpointChanged: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_CHANNEL_ENDPOINT_CHANGED 0x8000
/** Reconnect: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_RECONNECT 0x0000
/** OpenStandardMiningChannel: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL 0x0000
/** OpenStandardMiningChannel.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL_SUCCESS 0x0000
/** OpenMiningChannel.Error: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_OPEN_MINING_CHANNEL_ERROR 0x0000
/** OpenExtendedMiningChannel: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL 0x0000
/** OpenExtendedMiningChannel.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS 0x0000
/** NewMiningJob: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_NEW_MINING_JOB 0x8000
/** UpdateChannel: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_UPDATE_CHANNEL 0x8000
/** UpdateChannel.Error: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_UPDATE_CHANNEL_ERROR 0x8000
/** CloseChannel: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_CLOSE_CHANNEL 0x8000
/** SetExtranoncePrefix: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SET_EXTRANONCE_PREFIX 0x8000
/** SubmitSharesStandard: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SUBMIT_SHARES_STANDARD 0x8000
/** SubmitSharesExtended: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SUBMIT_SHARES_EXTENDED 0x8000
/** SubmitShares.Success: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SUBMIT_SHARES_SUCCESS 0x8000
/** SubmitShares.Error: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SUBMIT_SHARES_ERROR 0x8000
/** NewExtendedMiningJob: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_NEW_EXTENDED_MINING_JOB 0x8000
/** MiningSetNewPrevHash: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_MINING_SET_NEW_PREV_HASH 0x8000
/** SetTarget: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SET_TARGET 0x8000
/** SetCustomMiningJob: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SET_CUSTOM_MINING_JOB 0x8000
/** SetCustomMiningJob.Success: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SET_CUSTOM_MINING_JOB_SUCCESS 0x8000
/** SetCustomMiningJob.Error: bit to set in extension_type (a channel message) */
#define SV2_CHANNEL_BIT_SET_CUSTOM_MINING_JOB_ERROR 0x8000
/** SetGroupChannel: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_SET_GROUP_CHANNEL 0x0000
/** AllocateMiningJobToken: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_ALLOCATE_MINING_JOB_TOKEN 0x0000
/** AllocateMiningJobToken.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_ALLOCATE_MINING_JOB_TOKEN_SUCCESS 0x0000
/** ProvideMissingTransactions: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_PROVIDE_MISSING_TRANSACTIONS 0x0000
/** ProvideMissingTransactions.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_PROVIDE_MISSING_TRANSACTIONS_SUCCESS 0x0000
/** DeclareMiningJob: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_DECLARE_MINING_JOB 0x0000
/** DeclareMiningJob.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_DECLARE_MINING_JOB_SUCCESS 0x0000
/** DeclareMiningJob.Error: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_DECLARE_MINING_JOB_ERROR 0x0000
/** PushSolution: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_PUSH_SOLUTION 0x0000
/** CoinbaseOutputConstraints: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_COINBASE_OUTPUT_CONSTRAINTS 0x0000
/** NewTemplate: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_NEW_TEMPLATE 0x0000
/** SetNewPrevHash: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_SET_NEW_PREV_HASH 0x0000
/** RequestTransactionData: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_REQUEST_TRANSACTION_DATA 0x0000
/** RequestTransactionData.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_REQUEST_TRANSACTION_DATA_SUCCESS 0x0000
/** RequestTransactionData.Error: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_REQUEST_TRANSACTION_DATA_ERROR 0x0000
/** SubmitSolution: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_SUBMIT_SOLUTION 0x0000
/** RequestExtensions: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_REQUEST_EXTENSIONS 0x0000
/** RequestExtensions.Success: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_REQUEST_EXTENSIONS_SUCCESS 0x0000
/** RequestExtensions.Error: bit to set in extension_type (not a channel message) */
#define SV2_CHANNEL_BIT_REQUEST_EXTENSIONS_ERROR 0x0000

/* ---- Types ------------------------------------------------------------------------------- */

/**
 * What every fallible function returns: SV2_OK, SV2_NEED_MORE_DATA (> 0) or an error (< 0;
 * sv2_last_error() says why).
 */
typedef enum Sv2Status {
    /** success */
    SV2_OK = 0,
    /** nothing to return yet: feed more bytes, then call again */
    SV2_NEED_MORE_DATA = 1,
    /**
     * a NULL or dangling handle, a NULL pointer, or a message field whose value does not fit
     * its SV2 type
     */
    SV2_ERR_INVALID_ARGUMENT = -1,
    /** bytes that are not a well-formed SV2 frame */
    SV2_ERR_INVALID_FRAME = -2,
    /** a frame of an unknown message type; it was consumed, the stream stays usable */
    SV2_ERR_UNKNOWN_MESSAGE = -3,
    /** a payload that does not decode as its message type */
    SV2_ERR_DECODE = -4,
    /** a frame larger than the limit; the stream is unusable */
    SV2_ERR_PAYLOAD_TOO_BIG = -5,
    /** the Noise handshake failed; drop the connection */
    SV2_ERR_HANDSHAKE = -6,
    /** an encrypted frame failed authentication; drop the connection */
    SV2_ERR_DECRYPTION = -7,
    /** the connection was closed or failed before and cannot be used */
    SV2_ERR_CLOSED = -8,
    /** a bug or resource failure inside libsv2 (see sv2_last_error) */
    SV2_ERR_INTERNAL = -9,
} Sv2Status;

/**
 * Values of Sv2Message.type: the SV2 msg_type in bits 0-7 and the frame's extension_type
 * (without the channel bit) in bits 8-22, so every (extension_type, msg_type) pair has its own
 * value.
 */
typedef enum Sv2MsgType {
    /**
     * SetupConnection (common): First message of a connection: which protocol and versions the
     * client speaks.
     */
    SV2_MSG_SETUP_CONNECTION = 0x00,
    /**
     * SetupConnection.Success (common): The server accepts the connection and says which
     * version it will use.
     */
    SV2_MSG_SETUP_CONNECTION_SUCCESS = 0x01,
    /**
     * SetupConnection.Error (common): The server refuses the connection; it closes it after
     * sending this.
     */
    SV2_MSG_SETUP_CONNECTION_ERROR = 0x02,
    /**
     * ChannelEndpointChanged (common): The upstream endpoint of a channel changed; the client
     * must reset its state for it.
     */
    SV2_MSG_CHANNEL_ENDPOINT_CHANGED = 0x03,
    /**
     * Reconnect (common): Ask the client to reconnect elsewhere (same authority key required).
     */
    SV2_MSG_RECONNECT = 0x04,
    /**
     * OpenStandardMiningChannel (mining): Open a standard channel: the server sends ready
     * headers (NewMiningJob) for it.
     */
    SV2_MSG_OPEN_STANDARD_MINING_CHANNEL = 0x10,
    /**
     * OpenStandardMiningChannel.Success (mining): A standard channel is open (not a channel
     * message: the channel is new).
     */
    SV2_MSG_OPEN_STANDARD_MINING_CHANNEL_SUCCESS = 0x11,
    /** OpenMiningChannel.Error (mining): Opening a standard or extended channel failed. */
    SV2_MSG_OPEN_MINING_CHANNEL_ERROR = 0x12,
    /**
     * OpenExtendedMiningChannel (mining): Open an extended channel: the client builds
     * coinbases and rolls its extranonce.
     */
    SV2_MSG_OPEN_EXTENDED_MINING_CHANNEL = 0x13,
    /** OpenExtendedMiningChannel.Success (mining): An extended channel is open. */
    SV2_MSG_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS = 0x14,
    /**
     * NewMiningJob (mining): A job for a standard channel: a ready merkle root (future job if
     * min_ntime is absent).
     */
    SV2_MSG_NEW_MINING_JOB = 0x15,
    /** UpdateChannel (mining): The client's hashrate or maximum target changed. */
    SV2_MSG_UPDATE_CHANNEL = 0x16,
    /**
     * UpdateChannel.Error (mining): An UpdateChannel was refused (accepted ones get no reply).
     */
    SV2_MSG_UPDATE_CHANNEL_ERROR = 0x17,
    /**
     * CloseChannel (mining): Close a channel (either side); closing a group channel closes its
     * members.
     */
    SV2_MSG_CLOSE_CHANNEL = 0x18,
    /**
     * SetExtranoncePrefix (mining): A new extranonce prefix for the jobs that follow on a
     * standard or extended channel.
     */
    SV2_MSG_SET_EXTRANONCE_PREFIX = 0x19,
    /** SubmitSharesStandard (mining): A share found on a standard channel. */
    SV2_MSG_SUBMIT_SHARES_STANDARD = 0x1a,
    /**
     * SubmitSharesExtended (mining): A share found on an extended channel, with the extranonce
     * the client rolled.
     */
    SV2_MSG_SUBMIT_SHARES_EXTENDED = 0x1b,
    /**
     * SubmitShares.Success (mining): Shares accepted (possibly a batch of submits acknowledged
     * together).
     */
    SV2_MSG_SUBMIT_SHARES_SUCCESS = 0x1c,
    /** SubmitShares.Error (mining): A share was refused. */
    SV2_MSG_SUBMIT_SHARES_ERROR = 0x1d,
    /**
     * NewExtendedMiningJob (mining): A job for an extended or group channel: coinbase halves
     * and merkle path.
     */
    SV2_MSG_NEW_EXTENDED_MINING_JOB = 0x1f,
    /**
     * MiningSetNewPrevHash (mining): The Mining Protocol's SetNewPrevHash (the spec names it
     * SetNewPrevHash, like the TDP message 0x72; SRI's constant is
     * MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH): a new tip, mine the future job it names.
     */
    SV2_MSG_MINING_SET_NEW_PREV_HASH = 0x20,
    /** SetTarget (mining): A new maximum target for a channel (applies to its future jobs). */
    SV2_MSG_SET_TARGET = 0x21,
    /**
     * SetCustomMiningJob (mining): A job the client built itself (job declaration), for an
     * extended or group channel.
     */
    SV2_MSG_SET_CUSTOM_MINING_JOB = 0x22,
    /**
     * SetCustomMiningJob.Success (mining): The pool accepts the custom job and commits to
     * rewarding it.
     */
    SV2_MSG_SET_CUSTOM_MINING_JOB_SUCCESS = 0x23,
    /** SetCustomMiningJob.Error (mining): The pool refuses the custom job. */
    SV2_MSG_SET_CUSTOM_MINING_JOB_ERROR = 0x24,
    /**
     * SetGroupChannel (mining): Put channels into a group channel (jobs for the group reach
     * them all).
     */
    SV2_MSG_SET_GROUP_CHANNEL = 0x25,
    /**
     * AllocateMiningJobToken (job_declaration): Ask the job declarator for a token to declare
     * a future job with.
     */
    SV2_MSG_ALLOCATE_MINING_JOB_TOKEN = 0x50,
    /**
     * AllocateMiningJobToken.Success (job_declaration): A token, and the coinbase outputs the
     * pool needs in the jobs declared with it.
     */
    SV2_MSG_ALLOCATE_MINING_JOB_TOKEN_SUCCESS = 0x51,
    /**
     * ProvideMissingTransactions (job_declaration): The job declarator lacks some transactions
     * of a declared job: which ones.
     */
    SV2_MSG_PROVIDE_MISSING_TRANSACTIONS = 0x55,
    /**
     * ProvideMissingTransactions.Success (job_declaration): The transactions the job
     * declarator asked for, in the order asked.
     */
    SV2_MSG_PROVIDE_MISSING_TRANSACTIONS_SUCCESS = 0x56,
    /**
     * DeclareMiningJob (job_declaration): Propose a job (coinbase and transaction set) to the
     * job declarator.
     */
    SV2_MSG_DECLARE_MINING_JOB = 0x57,
    /**
     * DeclareMiningJob.Success (job_declaration): The job declarator accepts the declared job.
     */
    SV2_MSG_DECLARE_MINING_JOB_SUCCESS = 0x58,
    /**
     * DeclareMiningJob.Error (job_declaration): The job declarator refuses the declared job.
     */
    SV2_MSG_DECLARE_MINING_JOB_ERROR = 0x59,
    /**
     * PushSolution (job_declaration): A block found on the last declared job, so the job
     * declarator propagates it too.
     */
    SV2_MSG_PUSH_SOLUTION = 0x60,
    /**
     * CoinbaseOutputConstraints (template_distribution): Space and sigops the client will add
     * to the coinbase; the TP keeps them free (formerly CoinbaseOutputDataSize, 4 bytes,
     * without sigops).
     */
    SV2_MSG_COINBASE_OUTPUT_CONSTRAINTS = 0x70,
    /**
     * NewTemplate (template_distribution): A block template: everything needed to build the
     * coinbase and the merkle root.
     */
    SV2_MSG_NEW_TEMPLATE = 0x71,
    /**
     * SetNewPrevHash (template_distribution): A new chain tip: start mining the future
     * template it names.
     */
    SV2_MSG_SET_NEW_PREV_HASH = 0x72,
    /**
     * RequestTransactionData (template_distribution): Ask for the transactions of a template
     * (job declaration needs them).
     */
    SV2_MSG_REQUEST_TRANSACTION_DATA = 0x73,
    /**
     * RequestTransactionData.Success (template_distribution): The transactions of a template,
     * in block order, witness-serialized.
     */
    SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS = 0x74,
    /**
     * RequestTransactionData.Error (template_distribution): Transaction data cannot be served
     * for that template.
     */
    SV2_MSG_REQUEST_TRANSACTION_DATA_ERROR = 0x75,
    /**
     * SubmitSolution (template_distribution): A solved block for a template: header fields and
     * the full coinbase.
     */
    SV2_MSG_SUBMIT_SOLUTION = 0x76,
    /**
     * RequestExtensions (extensions_negotiation): Right after SetupConnection.Success: the
     * extensions the client wants to use.
     */
    SV2_MSG_REQUEST_EXTENSIONS = 0x100,
    /**
     * RequestExtensions.Success (extensions_negotiation): The requested extensions the server
     * supports.
     */
    SV2_MSG_REQUEST_EXTENSIONS_SUCCESS = 0x101,
    /**
     * RequestExtensions.Error (extensions_negotiation): None of the requested extensions is
     * supported, or the server requires others.
     */
    SV2_MSG_REQUEST_EXTENSIONS_ERROR = 0x102,
} Sv2MsgType;

/**
 * A byte string: len bytes at data. In messages C builds, data points at the caller's memory
 * (may be NULL when len is 0). Returned by the library: owned by the message
 * (sv2_message_free) or by the caller (sv2_bytes_free).
 */
typedef struct Sv2Bytes {
    /** first byte */
    const uint8_t *data;
    /** number of bytes */
    size_t len;
} Sv2Bytes;

/** A sequence of U32: len elements at elements (for OPTION fields len is 0 or 1). */
typedef struct Sv2U32Seq {
    /** first element */
    const uint32_t *elements;
    /** number of elements */
    size_t len;
} Sv2U32Seq;

/** A sequence of TLV_STR0_32: len elements at elements (for OPTION fields len is 0 or 1). */
typedef struct Sv2BytesSeq {
    /** first element */
    const Sv2Bytes *elements;
    /** number of elements */
    size_t len;
} Sv2BytesSeq;

/** A sequence of U256: len elements at elements (for OPTION fields len is 0 or 1). */
typedef struct Sv2U256Seq {
    /** first element */
    const uint8_t (*elements)[32];
    /** number of elements */
    size_t len;
} Sv2U256Seq;

/** A sequence of U16: len elements at elements (for OPTION fields len is 0 or 1). */
typedef struct Sv2U16Seq {
    /** first element */
    const uint16_t *elements;
    /** number of elements */
    size_t len;
} Sv2U16Seq;

/**
 * SetupConnection (common, msg_type 0x00): First message of a connection: which protocol and
 * versions the client speaks.
 */
typedef struct Sv2SetupConnection {
    /** U8: 0 mining, 1 job declaration, 2 template distribution */
    uint8_t protocol;
    /** U16: lowest protocol version the client supports */
    uint16_t min_version;
    /** U16: highest protocol version the client supports */
    uint16_t max_version;
    /** U32: protocol-specific feature flags (none defined for TDP) */
    uint32_t flags;
    /** STR0_255: host the client connected to (text; NUL-terminated in decoded messages) */
    Sv2Bytes endpoint_host;
    /** U16: port the client connected to */
    uint16_t endpoint_port;
    /** STR0_255: device vendor (text; NUL-terminated in decoded messages) */
    Sv2Bytes vendor;
    /** STR0_255: device hardware version (text; NUL-terminated in decoded messages) */
    Sv2Bytes hardware_version;
    /** STR0_255: device firmware version (text; NUL-terminated in decoded messages) */
    Sv2Bytes firmware;
    /**
     * STR0_255: device identifier, empty without telemetry (text; NUL-terminated in decoded
     * messages)
     */
    Sv2Bytes device_id;
} Sv2SetupConnection;

/**
 * SetupConnection.Success (common, msg_type 0x01): The server accepts the connection and says
 * which version it will use.
 */
typedef struct Sv2SetupConnectionSuccess {
    /** U16: protocol version chosen by the server */
    uint16_t used_version;
    /** U32: flags the server requires (none defined for TDP) */
    uint32_t flags;
} Sv2SetupConnectionSuccess;

/**
 * SetupConnection.Error (common, msg_type 0x02): The server refuses the connection; it closes
 * it after sending this.
 */
typedef struct Sv2SetupConnectionError {
    /** U32: client flags the server does not support (0: not a flags issue) */
    uint32_t flags;
    /**
     * STR0_255: e.g. unsupported-protocol, protocol-version-mismatch (text; NUL-terminated in
     * decoded messages)
     */
    Sv2Bytes error_code;
} Sv2SetupConnectionError;

/**
 * ChannelEndpointChanged (common, msg_type 0x03, channel message): The upstream endpoint of a
 * channel changed; the client must reset its state for it.
 */
typedef struct Sv2ChannelEndpointChanged {
    /** U32: channel whose endpoint changed */
    uint32_t channel_id;
} Sv2ChannelEndpointChanged;

/**
 * Reconnect (common, msg_type 0x04): Ask the client to reconnect elsewhere (same authority key
 * required).
 */
typedef struct Sv2Reconnect {
    /**
     * STR0_255: host to reconnect to; empty means the same host (text; NUL-terminated in
     * decoded messages)
     */
    Sv2Bytes new_host;
    /** U16: port to reconnect to; 0 means the same port */
    uint16_t new_port;
} Sv2Reconnect;

/**
 * OpenStandardMiningChannel (mining, msg_type 0x10): Open a standard channel: the server sends
 * ready headers (NewMiningJob) for it.
 */
typedef struct Sv2OpenStandardMiningChannel {
    /** U32: client-chosen id, unique per connection, echoed in the reply */
    uint32_t request_id;
    /**
     * STR0_255: who the shares are for, e.g. braiinstest.worker1 (text; NUL-terminated in
     * decoded messages)
     */
    Sv2Bytes user_identity;
    /** F32: expected hashrate in h/s (0.0 with no device yet) */
    float nominal_hash_rate;
    /** U256: largest target the device(s) accept */
    uint8_t max_target[32];
} Sv2OpenStandardMiningChannel;

/**
 * OpenStandardMiningChannel.Success (mining, msg_type 0x11): A standard channel is open (not a
 * channel message: the channel is new).
 */
typedef struct Sv2OpenStandardMiningChannelSuccess {
    /** U32: request_id of the OpenStandardMiningChannel */
    uint32_t request_id;
    /** U32: the new channel's id, stable for the connection */
    uint32_t channel_id;
    /** U256: initial target of the channel */
    uint8_t target[32];
    /** B0_32: implicit first part of the extranonce */
    Sv2Bytes extranonce_prefix;
    /** U32: group channel the channel belongs to */
    uint32_t group_channel_id;
} Sv2OpenStandardMiningChannelSuccess;

/**
 * OpenMiningChannel.Error (mining, msg_type 0x12): Opening a standard or extended channel
 * failed.
 */
typedef struct Sv2OpenMiningChannelError {
    /** U32: request_id of the Open*MiningChannel */
    uint32_t request_id;
    /**
     * STR0_255: e.g. unknown-user, max-target-out-of-range (text; NUL-terminated in decoded
     * messages)
     */
    Sv2Bytes error_code;
} Sv2OpenMiningChannelError;

/**
 * OpenExtendedMiningChannel (mining, msg_type 0x13): Open an extended channel: the client
 * builds coinbases and rolls its extranonce.
 */
typedef struct Sv2OpenExtendedMiningChannel {
    /** U32: client-chosen id, unique per connection, echoed in the reply */
    uint32_t request_id;
    /** STR0_255: who the shares are for (text; NUL-terminated in decoded messages) */
    Sv2Bytes user_identity;
    /** F32: expected hashrate in h/s */
    float nominal_hash_rate;
    /** U256: largest target the device(s) accept */
    uint8_t max_target[32];
    /** U16: extranonce bytes the client needs at least */
    uint16_t min_extranonce_size;
} Sv2OpenExtendedMiningChannel;

/** OpenExtendedMiningChannel.Success (mining, msg_type 0x14): An extended channel is open. */
typedef struct Sv2OpenExtendedMiningChannelSuccess {
    /** U32: request_id of the OpenExtendedMiningChannel */
    uint32_t request_id;
    /** U32: the new channel's id, stable for the connection */
    uint32_t channel_id;
    /** U256: initial target of the channel */
    uint8_t target[32];
    /** U16: extranonce bytes the client rolls */
    uint16_t extranonce_size;
    /** B0_32: implicit first part of the extranonce */
    Sv2Bytes extranonce_prefix;
    /** U32: group channel the channel belongs to */
    uint32_t group_channel_id;
} Sv2OpenExtendedMiningChannelSuccess;

/**
 * NewMiningJob (mining, msg_type 0x15, channel message): A job for a standard channel: a ready
 * merkle root (future job if min_ntime is absent).
 */
typedef struct Sv2NewMiningJob {
    /** U32: standard channel the job is for */
    uint32_t channel_id;
    /** U32: server's job id, unique among the channel's valid jobs */
    uint32_t job_id;
    /**
     * OPTION[U32]: smallest nTime; absent: a future job for a later SetNewPrevHash (len 0:
     * absent, len 1: elements[0] is the value)
     */
    Sv2U32Seq min_ntime;
    /** U32: block header nVersion (BIP323 bits may be rolled) */
    uint32_t version;
    /** U256: merkle root for the block header */
    uint8_t merkle_root[32];
} Sv2NewMiningJob;

/**
 * UpdateChannel (mining, msg_type 0x16, channel message): The client's hashrate or maximum
 * target changed.
 */
typedef struct Sv2UpdateChannel {
    /** U32: channel that changed */
    uint32_t channel_id;
    /** F32: new expected hashrate in h/s */
    float nominal_hash_rate;
    /** U256: largest target the device(s) now accept */
    uint8_t maximum_target[32];
} Sv2UpdateChannel;

/**
 * UpdateChannel.Error (mining, msg_type 0x17, channel message): An UpdateChannel was refused
 * (accepted ones get no reply).
 */
typedef struct Sv2UpdateChannelError {
    /** U32: channel of the UpdateChannel */
    uint32_t channel_id;
    /** STR0_255: e.g. invalid-nominal-hashrate (text; NUL-terminated in decoded messages) */
    Sv2Bytes error_code;
} Sv2UpdateChannelError;

/**
 * CloseChannel (mining, msg_type 0x18, channel message): Close a channel (either side);
 * closing a group channel closes its members.
 */
typedef struct Sv2CloseChannel {
    /** U32: channel to close */
    uint32_t channel_id;
    /** STR0_255: why, printable ASCII (text; NUL-terminated in decoded messages) */
    Sv2Bytes reason_code;
} Sv2CloseChannel;

/**
 * SetExtranoncePrefix (mining, msg_type 0x19, channel message): A new extranonce prefix for
 * the jobs that follow on a standard or extended channel.
 */
typedef struct Sv2SetExtranoncePrefix {
    /** U32: standard or extended channel */
    uint32_t channel_id;
    /** B0_32: implicit first part of the extranonce */
    Sv2Bytes extranonce_prefix;
} Sv2SetExtranoncePrefix;

/**
 * SubmitSharesStandard (mining, msg_type 0x1a, channel message): A share found on a standard
 * channel.
 */
typedef struct Sv2SubmitSharesStandard {
    /** U32: channel the share was found on */
    uint32_t channel_id;
    /** U32: submit counter within the channel */
    uint32_t sequence_number;
    /** U32: job the share is for */
    uint32_t job_id;
    /** U32: header nonce */
    uint32_t nonce;
    /** U32: header nTime */
    uint32_t ntime;
    /** U32: full header nVersion */
    uint32_t version;
} Sv2SubmitSharesStandard;

/**
 * SubmitSharesExtended (mining, msg_type 0x1b, channel message): A share found on an extended
 * channel, with the extranonce the client rolled.
 */
typedef struct Sv2SubmitSharesExtended {
    /** U32: channel the share was found on */
    uint32_t channel_id;
    /** U32: submit counter within the channel */
    uint32_t sequence_number;
    /** U32: job the share is for */
    uint32_t job_id;
    /** U32: header nonce */
    uint32_t nonce;
    /** U32: header nTime */
    uint32_t ntime;
    /** U32: full header nVersion */
    uint32_t version;
    /** B0_32: extranonce the client rolled (negotiated size) */
    Sv2Bytes extranonce;
    /**
     * TLV[0x0002:0x01]: worker name, a TLV field of extension 0x0002 (Worker-Specific Hashrate
     * Tracking) sent once that extension is negotiated; absent otherwise (len 0: absent, len
     * 1: elements[0] is the value)
     */
    Sv2BytesSeq user_identity;
} Sv2SubmitSharesExtended;

/**
 * SubmitShares.Success (mining, msg_type 0x1c, channel message): Shares accepted (possibly a
 * batch of submits acknowledged together).
 */
typedef struct Sv2SubmitSharesSuccess {
    /** U32: channel of the shares */
    uint32_t channel_id;
    /** U32: most recent sequence number accepted */
    uint32_t last_sequence_number;
    /** U32: submits acknowledged in this batch */
    uint32_t new_submits_accepted_count;
    /** U64: sum of the difficulty of those shares */
    uint64_t new_shares_sum;
} Sv2SubmitSharesSuccess;

/** SubmitShares.Error (mining, msg_type 0x1d, channel message): A share was refused. */
typedef struct Sv2SubmitSharesError {
    /** U32: channel of the share */
    uint32_t channel_id;
    /** U32: sequence number of the refused submit */
    uint32_t sequence_number;
    /**
     * STR0_255: e.g. stale-share, difficulty-too-low (text; NUL-terminated in decoded
     * messages)
     */
    Sv2Bytes error_code;
} Sv2SubmitSharesError;

/**
 * NewExtendedMiningJob (mining, msg_type 0x1f, channel message): A job for an extended or
 * group channel: coinbase halves and merkle path.
 */
typedef struct Sv2NewExtendedMiningJob {
    /** U32: extended channel, or group channel (broadcast) */
    uint32_t channel_id;
    /** U32: server's job id, unique among the channel's valid jobs */
    uint32_t job_id;
    /**
     * OPTION[U32]: smallest nTime; absent: a future job for a later SetNewPrevHash (len 0:
     * absent, len 1: elements[0] is the value)
     */
    Sv2U32Seq min_ntime;
    /** U32: block header nVersion */
    uint32_t version;
    /** BOOL: true: the BIP323 bits of version may be rolled */
    bool version_rolling_allowed;
    /** SEQ0_255[U256]: coinbase merkle branch, deepest first */
    Sv2U256Seq merkle_path;
    /** B0_64K: coinbase bytes before the extranonce (no BIP141 fields) */
    Sv2Bytes coinbase_tx_prefix;
    /** B0_64K: coinbase bytes after the extranonce */
    Sv2Bytes coinbase_tx_suffix;
} Sv2NewExtendedMiningJob;

/**
 * MiningSetNewPrevHash (mining, msg_type 0x20, channel message): The Mining Protocol's
 * SetNewPrevHash (the spec names it SetNewPrevHash, like the TDP message 0x72; SRI's constant
 * is MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH): a new tip, mine the future job it names.
 */
typedef struct Sv2MiningSetNewPrevHash {
    /** U32: channel or group channel it is valid for */
    uint32_t channel_id;
    /** U32: future job to mine on this prev_hash */
    uint32_t job_id;
    /** U256: previous block hash as in the header */
    uint8_t prev_hash[32];
    /** U32: smallest nTime to hash */
    uint32_t min_ntime;
    /** U32: header nBits */
    uint32_t nbits;
} Sv2MiningSetNewPrevHash;

/**
 * SetTarget (mining, msg_type 0x21, channel message): A new maximum target for a channel
 * (applies to its future jobs).
 */
typedef struct Sv2SetTarget {
    /** U32: channel (or group channel) the target is for */
    uint32_t channel_id;
    /** U256: largest hash accepted as a share */
    uint8_t maximum_target[32];
} Sv2SetTarget;

/**
 * SetCustomMiningJob (mining, msg_type 0x22, channel message): A job the client built itself
 * (job declaration), for an extended or group channel.
 */
typedef struct Sv2SetCustomMiningJob {
    /** U32: extended channel */
    uint32_t channel_id;
    /** U32: client-chosen id, echoed in the reply */
    uint32_t request_id;
    /** B0_255: token from the job declarator for this job (SRI names the field token) */
    Sv2Bytes mining_job_token;
    /** U32: block header nVersion */
    uint32_t version;
    /** U256: previous block hash as in the header */
    uint8_t prev_hash[32];
    /** U32: smallest nTime to hash */
    uint32_t min_ntime;
    /** U32: header nBits */
    uint32_t nbits;
    /** U32: coinbase nVersion */
    uint32_t coinbase_tx_version;
    /** B0_255: start of the coinbase scriptSig (up to 8 bytes) */
    Sv2Bytes coinbase_prefix;
    /** U32: coinbase input nSequence (spec: coinbase_tx_input_nSequence) */
    uint32_t coinbase_tx_input_n_sequence;
    /** B0_64K: coinbase outputs, CompactSize-prefixed array */
    Sv2Bytes coinbase_tx_outputs;
    /** U32: coinbase nLockTime */
    uint32_t coinbase_tx_locktime;
    /** SEQ0_255[U256]: coinbase merkle branch, deepest first */
    Sv2U256Seq merkle_path;
} Sv2SetCustomMiningJob;

/**
 * SetCustomMiningJob.Success (mining, msg_type 0x23, channel message): The pool accepts the
 * custom job and commits to rewarding it.
 */
typedef struct Sv2SetCustomMiningJobSuccess {
    /** U32: extended channel */
    uint32_t channel_id;
    /** U32: request_id of the SetCustomMiningJob */
    uint32_t request_id;
    /** U32: job id to submit shares with */
    uint32_t job_id;
} Sv2SetCustomMiningJobSuccess;

/**
 * SetCustomMiningJob.Error (mining, msg_type 0x24, channel message): The pool refuses the
 * custom job.
 */
typedef struct Sv2SetCustomMiningJobError {
    /** U32: extended channel */
    uint32_t channel_id;
    /** U32: request_id of the SetCustomMiningJob */
    uint32_t request_id;
    /**
     * STR0_255: e.g. invalid-mining-job-token, stale-chain-tip (text; NUL-terminated in
     * decoded messages)
     */
    Sv2Bytes error_code;
} Sv2SetCustomMiningJobError;

/**
 * SetGroupChannel (mining, msg_type 0x25): Put channels into a group channel (jobs for the
 * group reach them all).
 */
typedef struct Sv2SetGroupChannel {
    /** U32: the group channel */
    uint32_t group_channel_id;
    /** SEQ0_64K[U32]: standard or extended channels in the group */
    Sv2U32Seq channel_ids;
} Sv2SetGroupChannel;

/**
 * AllocateMiningJobToken (job_declaration, msg_type 0x50): Ask the job declarator for a token
 * to declare a future job with.
 */
typedef struct Sv2AllocateMiningJobToken {
    /**
     * STR0_255: who asks, as the pool knows the client (text; NUL-terminated in decoded
     * messages)
     */
    Sv2Bytes user_identifier;
    /** U32: client-chosen id, echoed in the reply */
    uint32_t request_id;
} Sv2AllocateMiningJobToken;

/**
 * AllocateMiningJobToken.Success (job_declaration, msg_type 0x51): A token, and the coinbase
 * outputs the pool needs in the jobs declared with it.
 */
typedef struct Sv2AllocateMiningJobTokenSuccess {
    /** U32: request_id of the AllocateMiningJobToken */
    uint32_t request_id;
    /** B0_255: token for DeclareMiningJob / SetCustomMiningJob */
    Sv2Bytes mining_job_token;
    /** B0_64K: pool's outputs, first = pool payout (SRI names the field coinbase_outputs) */
    Sv2Bytes coinbase_tx_outputs;
} Sv2AllocateMiningJobTokenSuccess;

/**
 * ProvideMissingTransactions (job_declaration, msg_type 0x55): The job declarator lacks some
 * transactions of a declared job: which ones.
 */
typedef struct Sv2ProvideMissingTransactions {
    /** U32: request_id of the DeclareMiningJob */
    uint32_t request_id;
    /** SEQ0_64K[U16]: 0-based positions in DeclareMiningJob.wtxid_list */
    Sv2U16Seq unknown_tx_position_list;
} Sv2ProvideMissingTransactions;

/**
 * ProvideMissingTransactions.Success (job_declaration, msg_type 0x56): The transactions the
 * job declarator asked for, in the order asked.
 */
typedef struct Sv2ProvideMissingTransactionsSuccess {
    /** U32: request_id of the DeclareMiningJob */
    uint32_t request_id;
    /** SEQ0_64K[B0_16M]: full transactions */
    Sv2BytesSeq transaction_list;
} Sv2ProvideMissingTransactionsSuccess;

/**
 * DeclareMiningJob (job_declaration, msg_type 0x57): Propose a job (coinbase and transaction
 * set) to the job declarator.
 */
typedef struct Sv2DeclareMiningJob {
    /** U32: client-chosen id, echoed in the reply */
    uint32_t request_id;
    /** B0_255: token from AllocateMiningJobToken.Success */
    Sv2Bytes mining_job_token;
    /** U32: block header nVersion */
    uint32_t version;
    /** B0_64K: coinbase bytes before the extranonce (with BIP141 fields) */
    Sv2Bytes coinbase_tx_prefix;
    /** B0_64K: coinbase bytes after the extranonce */
    Sv2Bytes coinbase_tx_suffix;
    /** SEQ0_64K[U256]: wtxids of the template's transactions, no coinbase */
    Sv2U256Seq wtxid_list;
    /** B0_64K: extra data the pool may need (from the TDP) */
    Sv2Bytes excess_data;
} Sv2DeclareMiningJob;

/**
 * DeclareMiningJob.Success (job_declaration, msg_type 0x58): The job declarator accepts the
 * declared job.
 */
typedef struct Sv2DeclareMiningJobSuccess {
    /** U32: request_id of the DeclareMiningJob */
    uint32_t request_id;
    /** B0_255: token to use in SetCustomMiningJob */
    Sv2Bytes new_mining_job_token;
} Sv2DeclareMiningJobSuccess;

/**
 * DeclareMiningJob.Error (job_declaration, msg_type 0x59): The job declarator refuses the
 * declared job.
 */
typedef struct Sv2DeclareMiningJobError {
    /** U32: request_id of the DeclareMiningJob */
    uint32_t request_id;
    /**
     * STR0_255: e.g. invalid-mining-job-token, missing-txs (text; NUL-terminated in decoded
     * messages)
     */
    Sv2Bytes error_code;
    /** B0_64K: optional details */
    Sv2Bytes error_details;
} Sv2DeclareMiningJobError;

/**
 * PushSolution (job_declaration, msg_type 0x60): A block found on the last declared job, so
 * the job declarator propagates it too.
 */
typedef struct Sv2PushSolution {
    /** B0_32: the full extranonce */
    Sv2Bytes extranonce;
    /** U256: previous block hash (spec: prev hash) */
    uint8_t prev_hash[32];
    /** U32: header nonce */
    uint32_t nonce;
    /** U32: header nTime */
    uint32_t ntime;
    /** U32: header nBits */
    uint32_t nbits;
    /** U32: header nVersion */
    uint32_t version;
} Sv2PushSolution;

/**
 * CoinbaseOutputConstraints (template_distribution, msg_type 0x70): Space and sigops the
 * client will add to the coinbase; the TP keeps them free (formerly CoinbaseOutputDataSize, 4
 * bytes, without sigops).
 */
typedef struct Sv2CoinbaseOutputConstraints {
    /** U32: max serialized bytes of coinbase outputs the client adds */
    uint32_t coinbase_output_max_additional_size;
    /** U16: max sigops of those outputs; absent in the legacy 4-byte form (then 400) */
    uint16_t coinbase_output_max_additional_sigops;
} Sv2CoinbaseOutputConstraints;

/**
 * NewTemplate (template_distribution, msg_type 0x71): A block template: everything needed to
 * build the coinbase and the merkle root.
 */
typedef struct Sv2NewTemplate {
    /** U64: TP-assigned id, increasing per connection */
    uint64_t template_id;
    /** BOOL: true: for a SetNewPrevHash still to come */
    bool future_template;
    /** U32: block header nVersion */
    uint32_t version;
    /** U32: coinbase transaction nVersion */
    uint32_t coinbase_tx_version;
    /** B0_255: bytes the coinbase scriptSig must start with */
    Sv2Bytes coinbase_prefix;
    /** U32: nSequence of the coinbase input */
    uint32_t coinbase_tx_input_sequence;
    /** U64: satoshis the client may assign */
    uint64_t coinbase_tx_value_remaining;
    /** U32: number of outputs in coinbase_tx_outputs */
    uint32_t coinbase_tx_outputs_count;
    /** B0_64K: serialized outputs to append to the coinbase (witness commitment) */
    Sv2Bytes coinbase_tx_outputs;
    /** U32: coinbase nLockTime */
    uint32_t coinbase_tx_locktime;
    /** SEQ0_255[U256]: coinbase merkle branch, leaf level first */
    Sv2U256Seq merkle_path;
} Sv2NewTemplate;

/**
 * SetNewPrevHash (template_distribution, msg_type 0x72): A new chain tip: start mining the
 * future template it names.
 */
typedef struct Sv2SetNewPrevHash {
    /** U64: id of a future NewTemplate already sent */
    uint64_t template_id;
    /** U256: previous block hash as in the header */
    uint8_t prev_hash[32];
    /** U32: nTime to start with */
    uint32_t header_timestamp;
    /** U32: header nBits */
    uint32_t n_bits;
    /** U256: max header hash (little-endian) of a valid block */
    uint8_t target[32];
} Sv2SetNewPrevHash;

/**
 * RequestTransactionData (template_distribution, msg_type 0x73): Ask for the transactions of a
 * template (job declaration needs them).
 */
typedef struct Sv2RequestTransactionData {
    /** U64: template whose transactions are wanted */
    uint64_t template_id;
} Sv2RequestTransactionData;

/**
 * RequestTransactionData.Success (template_distribution, msg_type 0x74): The transactions of a
 * template, in block order, witness-serialized.
 */
typedef struct Sv2RequestTransactionDataSuccess {
    /** U64: template the data belongs to */
    uint64_t template_id;
    /** B0_64K: coinbase witness reserved value (opaque to clients) */
    Sv2Bytes excess_data;
    /** SEQ0_64K[B0_16M]: non-coinbase transactions in block order */
    Sv2BytesSeq transaction_list;
} Sv2RequestTransactionDataSuccess;

/**
 * RequestTransactionData.Error (template_distribution, msg_type 0x75): Transaction data cannot
 * be served for that template.
 */
typedef struct Sv2RequestTransactionDataError {
    /** U64: template that was asked for */
    uint64_t template_id;
    /**
     * STR0_255: template-id-not-found or stale-template-id (text; NUL-terminated in decoded
     * messages)
     */
    Sv2Bytes error_code;
} Sv2RequestTransactionDataError;

/**
 * SubmitSolution (template_distribution, msg_type 0x76): A solved block for a template: header
 * fields and the full coinbase.
 */
typedef struct Sv2SubmitSolution {
    /** U64: template that was solved */
    uint64_t template_id;
    /** U32: header nVersion (with rolled bits) */
    uint32_t version;
    /** U32: header nTime */
    uint32_t header_timestamp;
    /** U32: header nonce */
    uint32_t header_nonce;
    /** B0_64K: complete coinbase transaction, with witness */
    Sv2Bytes coinbase_tx;
} Sv2SubmitSolution;

/**
 * RequestExtensions (extensions_negotiation, extension_type 0x0001, msg_type 0x00): Right
 * after SetupConnection.Success: the extensions the client wants to use.
 */
typedef struct Sv2RequestExtensions {
    /** U16: client-chosen id, echoed in the reply */
    uint16_t request_id;
    /** SEQ0_64K[U16]: extension ids */
    Sv2U16Seq requested_extensions;
} Sv2RequestExtensions;

/**
 * RequestExtensions.Success (extensions_negotiation, extension_type 0x0001, msg_type 0x01):
 * The requested extensions the server supports.
 */
typedef struct Sv2RequestExtensionsSuccess {
    /** U16: request_id of the RequestExtensions */
    uint16_t request_id;
    /** SEQ0_64K[U16]: extension ids */
    Sv2U16Seq supported_extensions;
} Sv2RequestExtensionsSuccess;

/**
 * RequestExtensions.Error (extensions_negotiation, extension_type 0x0001, msg_type 0x02): None
 * of the requested extensions is supported, or the server requires others.
 */
typedef struct Sv2RequestExtensionsError {
    /** U16: request_id of the RequestExtensions */
    uint16_t request_id;
    /** SEQ0_64K[U16]: requested ids the server lacks */
    Sv2U16Seq unsupported_extensions;
    /** SEQ0_64K[U16]: ids the server requires but the client did not request */
    Sv2U16Seq required_extensions;
} Sv2RequestExtensionsError;

/**
 * Any SV2 message: type says which union member is valid, e.g. msg.type ==
 * SV2_MSG_NEW_TEMPLATE and msg.new_template.template_id.
 */
typedef struct Sv2Message {
    /** which member of the union below is valid */
    Sv2MsgType type;
    /**
     * library-private: the single allocation holding the bytes of a message the library
     * returned (NULL otherwise); sv2_encode ignores it
     */
    void *storage;
    union {
        Sv2SetupConnection setup_connection;
        Sv2SetupConnectionSuccess setup_connection_success;
        Sv2SetupConnectionError setup_connection_error;
        Sv2ChannelEndpointChanged channel_endpoint_changed;
        Sv2Reconnect reconnect;
        Sv2OpenStandardMiningChannel open_standard_mining_channel;
        Sv2OpenStandardMiningChannelSuccess open_standard_mining_channel_success;
        Sv2OpenMiningChannelError open_mining_channel_error;
        Sv2OpenExtendedMiningChannel open_extended_mining_channel;
        Sv2OpenExtendedMiningChannelSuccess open_extended_mining_channel_success;
        Sv2NewMiningJob new_mining_job;
        Sv2UpdateChannel update_channel;
        Sv2UpdateChannelError update_channel_error;
        Sv2CloseChannel close_channel;
        Sv2SetExtranoncePrefix set_extranonce_prefix;
        Sv2SubmitSharesStandard submit_shares_standard;
        Sv2SubmitSharesExtended submit_shares_extended;
        Sv2SubmitSharesSuccess submit_shares_success;
        Sv2SubmitSharesError submit_shares_error;
        Sv2NewExtendedMiningJob new_extended_mining_job;
        Sv2MiningSetNewPrevHash mining_set_new_prev_hash;
        Sv2SetTarget set_target;
        Sv2SetCustomMiningJob set_custom_mining_job;
        Sv2SetCustomMiningJobSuccess set_custom_mining_job_success;
        Sv2SetCustomMiningJobError set_custom_mining_job_error;
        Sv2SetGroupChannel set_group_channel;
        Sv2AllocateMiningJobToken allocate_mining_job_token;
        Sv2AllocateMiningJobTokenSuccess allocate_mining_job_token_success;
        Sv2ProvideMissingTransactions provide_missing_transactions;
        Sv2ProvideMissingTransactionsSuccess provide_missing_transactions_success;
        Sv2DeclareMiningJob declare_mining_job;
        Sv2DeclareMiningJobSuccess declare_mining_job_success;
        Sv2DeclareMiningJobError declare_mining_job_error;
        Sv2PushSolution push_solution;
        Sv2CoinbaseOutputConstraints coinbase_output_constraints;
        Sv2NewTemplate new_template;
        Sv2SetNewPrevHash set_new_prev_hash;
        Sv2RequestTransactionData request_transaction_data;
        Sv2RequestTransactionDataSuccess request_transaction_data_success;
        Sv2RequestTransactionDataError request_transaction_data_error;
        Sv2SubmitSolution submit_solution;
        Sv2RequestExtensions request_extensions;
        Sv2RequestExtensionsSuccess request_extensions_success;
        Sv2RequestExtensionsError request_extensions_error;
        /**
         * not a message: fixes the union at 256 bytes, so messages added later never change
         * sizeof(Sv2Message)
         */
        uint64_t reserved[32];
    };
} Sv2Message;

/** Opaque handle: streaming frame decoder (plain framing); sv2_decoder_new / _free. */
typedef struct Sv2Decoder Sv2Decoder;

/** Opaque handle: one connection, Noise or plain, sans-I/O; sv2_connection_new_* / _free. */
typedef struct Sv2Connection Sv2Connection;

/**
 * Opaque handle: an embedded template provider serving SV2 clients from a library thread;
 * sv2_tp_new / _free.
 */
typedef struct Sv2Tp Sv2Tp;

/**
 * Called with each solved block (serialized, witness included) after the library wrote it to
 * the data directory. Runs on a library thread, one call at a time; block is valid only during
 * the call. It may call sv2_tp_push_template, never sv2_tp_stop or sv2_tp_free.
 */
typedef void (*Sv2TpSolutionCallback)(void *user, const uint8_t *block, size_t len);

/** A secp256k1 key pair: secret key and BIP340 x-only public key. */
typedef struct Sv2Keypair {
    /** secret key; keep it private */
    uint8_t secret[32];
    /** x-only public key */
    uint8_t pubkey[32];
} Sv2Keypair;

/**
 * What a Noise responder (server) needs: its static key and a certificate for it, either given
 * or issued here with the authority secret key.
 */
typedef struct Sv2ResponderKeys {
    /** the server's static secret key */
    uint8_t static_secret[32];
    /** authority secret key; signs a certificate when certificate is NULL */
    uint8_t authority_secret[32];
    /** SV2_CERTIFICATE_SIZE bytes issued by the authority, or NULL */
    const uint8_t *certificate;
    /** seconds an issued certificate stays valid; 0 means one hour */
    uint32_t validity;
} Sv2ResponderKeys;

/**
 * How to run an embedded template provider (sv2_tp_new copies it; strings may be freed
 * afterwards). Zero-initialise it and set what you need.
 */
typedef struct Sv2TpConfig {
    /** address to listen on; NULL means "127.0.0.1" */
    const char *bind_address;
    /** port to listen on; 0 picks a free one (sv2_tp_port) */
    uint16_t port;
    /**
     * "main", "test", "testnet4", "signet" or "regtest" (required: subsidy and difficulty
     * rules follow it)
     */
    const char *network;
    /**
     * directory for the Noise keys (created once, mode 0600) and the solved blocks
     * (solved-blocks/); created if missing
     */
    const char *datadir;
    /**
     * sat the fees of a pushed template must add before clients get it as an update (same
     * tip); 0 sends every fee increase
     */
    uint64_t fee_delta;
    /** minimum milliseconds between fee-driven updates; new tips never wait */
    uint32_t template_interval_ms;
    /** receives every solved block; NULL: blocks are only written to datadir */
    Sv2TpSolutionCallback on_solution;
    /** passed to on_solution as is */
    void *user;
} Sv2TpConfig;

/* ---- Functions: Library ------------------------------------------------------------------ */

/** Returns SV2_ABI_VERSION of the loaded library; compare it with the header's at start-up. */
int sv2_abi_version(void);

/**
 * The message of the last failure on the calling thread ("" if none). Valid until the next
 * failing call on this thread; successful calls leave it.
 */
const char *sv2_last_error(void);

/** The constant's name ("SV2_ERR_DECODE"), or "SV2_UNKNOWN_STATUS". */
const char *sv2_status_name(Sv2Status status);

/** Frees bytes the library returned and sets data = NULL, len = 0. NULL is ignored. */
void sv2_bytes_free(Sv2Bytes *bytes);

/**
 * Frees the buffers of a message the library returned and zeroes it. Only for messages from
 * sv2_decode / sv2_decoder_next / sv2_connection_next. NULL is ignored.
 */
void sv2_message_free(Sv2Message *msg);

/* ---- Functions: Codec -------------------------------------------------------------------- */

/**
 * Encodes msg as one plaintext frame (header + payload) into *frame, which the caller frees
 * with sv2_bytes_free. msg is only read. On failure *frame is {NULL, 0}.
 */
Sv2Status sv2_encode(const Sv2Message *msg, Sv2Bytes *frame);

/**
 * The size of the frame sv2_encode / sv2_encode_into would make of msg (header included),
 * after the same checks. On failure *size is 0.
 */
Sv2Status sv2_encoded_size(const Sv2Message *msg, size_t *size);

/**
 * Encodes msg as one frame into the caller's buf of cap bytes, no allocation; *written is the
 * frame's size. If cap is too small: SV2_ERR_INVALID_ARGUMENT, *written is the size needed and
 * buf is untouched.
 */
Sv2Status sv2_encode_into(const Sv2Message *msg, uint8_t *buf, size_t cap, size_t *written);

/**
 * Decodes the frame at the start of data (len bytes, possibly more than one frame): SV2_OK
 * with the message in *out (free it with sv2_message_free) and the frame's size in *consumed;
 * SV2_NEED_MORE_DATA (*consumed 0) if data holds no whole frame; on SV2_ERR_UNKNOWN_MESSAGE or
 * SV2_ERR_DECODE *consumed is the bad frame's size, so the caller can skip it. No allocation
 * for messages without variable-size fields.
 */
Sv2Status sv2_decode(const uint8_t *data, size_t len, Sv2Message *out, size_t *consumed);

/** A streaming decoder for plaintext frames, or NULL on failure. */
Sv2Decoder *sv2_decoder_new(void);

/**
 * A streaming decoder that refuses frames with more than max_payload payload bytes
 * (SV2_ERR_PAYLOAD_TOO_BIG, before buffering them), for peers that must not make it hold up to
 * 16 MiB. NULL if max_payload > SV2_MAX_PAYLOAD.
 */
Sv2Decoder *sv2_decoder_new_with_limit(size_t max_payload);

/** Buffers len bytes (any chunking: a byte, a frame, many frames). data is copied. */
Sv2Status sv2_decoder_feed(Sv2Decoder *dec, const uint8_t *data, size_t len);

/**
 * SV2_OK with the next message in *out (free it with sv2_message_free), SV2_NEED_MORE_DATA
 * until a whole frame is buffered, or an error. Frames of an extension without messages here
 * are skipped. After SV2_ERR_UNKNOWN_MESSAGE or SV2_ERR_DECODE the bad frame is consumed and
 * the next call continues; after SV2_ERR_PAYLOAD_TOO_BIG the decoder stays failed.
 */
Sv2Status sv2_decoder_next(Sv2Decoder *dec, Sv2Message *out);

/** Frees the decoder. NULL is ignored. */
void sv2_decoder_free(Sv2Decoder *dec);

/* ---- Functions: Connection --------------------------------------------------------------- */

/**
 * A Noise initiator (client). authority_pubkey is the x-only key the server's certificate must
 * be signed by, or NULL to skip that check. Act 1 is queued: send what
 * sv2_connection_take_output returns. NULL on failure.
 */
Sv2Connection *sv2_connection_new_initiator(const uint8_t authority_pubkey[32]);

/** A Noise responder (server) with the given keys. NULL on failure. */
Sv2Connection *sv2_connection_new_responder(const Sv2ResponderKeys *keys);

/** A connection without encryption (plain SV2 framing). NULL on failure. */
Sv2Connection *sv2_connection_new_plain(void);

/**
 * Processes bytes read from the socket: handshake acts (replies are queued for
 * sv2_connection_take_output) and frames (messages queued for sv2_connection_next). data is
 * copied. Any error makes the connection unusable.
 */
Sv2Status sv2_connection_feed(Sv2Connection *conn, const uint8_t *data, size_t len);

/**
 * SV2_OK with the next received message in *out (free it with sv2_message_free), or
 * SV2_NEED_MORE_DATA when none is queued.
 */
Sv2Status sv2_connection_next(Sv2Connection *conn, Sv2Message *out);

/**
 * Queues msg (encrypted under Noise) for sv2_connection_take_output. msg is only read.
 * SV2_ERR_HANDSHAKE before the handshake finished.
 */
Sv2Status sv2_connection_send(Sv2Connection *conn, const Sv2Message *msg);

/**
 * Moves every queued byte (handshake acts, frames) into *out, in order; write them to the
 * socket, then sv2_bytes_free. {NULL, 0} when nothing is queued.
 */
Sv2Status sv2_connection_take_output(Sv2Connection *conn, Sv2Bytes *out);

/** true once the handshake finished (always for plain connections). */
bool sv2_connection_is_established(const Sv2Connection *conn);

/** The server's static x-only key (initiators, after the handshake). */
Sv2Status sv2_connection_remote_pubkey(const Sv2Connection *conn, uint8_t out[32]);

/** Frees the connection. NULL is ignored. */
void sv2_connection_free(Sv2Connection *conn);

/* ---- Functions: Keys --------------------------------------------------------------------- */

/** A fresh key pair from the operating system's random source. */
Sv2Status sv2_keypair_generate(Sv2Keypair *out);

/** The key pair of a secret key (SV2_ERR_INVALID_ARGUMENT if not a valid key). */
Sv2Status sv2_keypair_from_secret(const uint8_t secret[32], Sv2Keypair *out);

/**
 * Writes the base58check text form of an authority x-only key, NUL-terminated, into out (cap
 * >= SV2_AUTHORITY_PUBKEY_TEXT_SIZE always suffices).
 */
Sv2Status sv2_authority_pubkey_to_text(const uint8_t pubkey[32], char *out, size_t cap);

/**
 * Parses the base58check text form; SV2_ERR_INVALID_ARGUMENT on a bad checksum, version or
 * length.
 */
Sv2Status sv2_authority_pubkey_from_text(const char *text, uint8_t out[32]);

/* ---- Functions: Embedded template provider ----------------------------------------------- */

/**
 * An embedded template provider (not listening yet). Loads or creates the Noise keys in
 * cfg->datadir, so sv2_tp_authority_pubkey works at once. NULL on failure (a bad network name,
 * an unusable datadir).
 */
Sv2Tp *sv2_tp_new(const Sv2TpConfig *cfg);

/**
 * Starts serving on a library thread; returns once the socket listens.
 * SV2_ERR_INVALID_ARGUMENT if the address cannot be bound, SV2_ERR_CLOSED after sv2_tp_stop or
 * a failed start (create a new one).
 */
Sv2Status sv2_tp_start(Sv2Tp *tp);

/**
 * The port it listens on (after sv2_tp_start), else the configured port; 0 for an invalid
 * handle.
 */
uint16_t sv2_tp_port(const Sv2Tp *tp);

/**
 * Writes the authority public key (base58check text, what clients configure) into out,
 * NUL-terminated; cap >= SV2_AUTHORITY_PUBKEY_TEXT_SIZE always suffices.
 */
Sv2Status sv2_tp_authority_pubkey(const Sv2Tp *tp, char *out, size_t cap);

/**
 * Hands the provider a block template serialized as a block: header (prev hash, time, nBits,
 * version), a placeholder coinbase whose scriptSig starts with the BIP34 height and whose only
 * non-OP_RETURN output is worth subsidy + fees, OP_RETURN outputs such as the witness
 * commitment, then the transactions. A new previous-block hash is a new tip: clients get
 * SetNewPrevHash for the empty template announced in advance before this template is even
 * parsed in full. block is copied. Any thread, also from on_solution. SV2_ERR_INVALID_ARGUMENT
 * for a malformed template (sv2_last_error says what is wrong), SV2_ERR_CLOSED after
 * sv2_tp_stop. Before sv2_tp_start the last push is kept for the start.
 */
Sv2Status sv2_tp_push_template(Sv2Tp *tp, const uint8_t *block, size_t len);

/**
 * Disconnects every client, closes the socket and ends the library thread. Solutions already
 * found are delivered first; once it returns, on_solution is never called again. Waits for a
 * running on_solution: never call it holding a lock that on_solution takes. Calling it again
 * does nothing.
 */
Sv2Status sv2_tp_stop(Sv2Tp *tp);

/** Stops it (as sv2_tp_stop) if running, then frees it. NULL is ignored. */
void sv2_tp_free(Sv2Tp *tp);

#ifdef __cplusplus
}
#endif

#endif /* SV2_H */

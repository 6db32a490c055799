"""The Python bodies of libsv2's exported functions.

``install(ffi, lib)`` runs once, from the init code frozen into the library, and binds
one function below to each extern "Python" entry point listed in ``abi.FUNCTIONS``: the
connections, keys and the embedded template provider.  The codec is C (sv2_codec.c) and
never comes here; the connection paths use it too: a message C hands to
``sv2_connection_send`` is encoded by ``sv2_encode``, and the frames a connection
decrypted are decoded into C structs by ``sv2_decode``, so both paths report the same
errors.  Every entry point gets an ``onerror`` handler, so an exception of any kind
becomes a status code (from the error's ``status``) plus the text returned by
``sv2_last_error()`` on the calling thread; nothing escapes into the host process.

Imports of the Noise layer are deferred to the first connection/key call.
"""

from __future__ import annotations

import traceback
from collections import deque
from typing import Any, Callable

from .. import errors
from . import abi
from .handles import TABLE

OK = abi.STATUS["SV2_OK"]
NEED_MORE_DATA = abi.STATUS["SV2_NEED_MORE_DATA"]
INTERNAL = abi.STATUS["SV2_ERR_INTERNAL"]
CONNECTION = "Sv2Connection"
KEY_SIZE = abi.KEY_SIZE
MAX_TEXT = 1024  # longest key text read from C (stops at the NUL before that)

ffi: Any = None
lib: Any = None
MESSAGE_SIZE = 0
_IMPLS: dict[str, Callable] = {}


def _impl(fn: Callable) -> Callable:
    """Register fn as the body of sv2_<fn name>."""
    _IMPLS["sv2_" + fn.__name__] = fn
    return fn


# ---- errors -------------------------------------------------------------------------


def status_of(exc: BaseException) -> int:
    name = exc.status if isinstance(exc, errors.Sv2Error) else "SV2_ERR_INTERNAL"
    return abi.STATUS.get(name, INTERNAL)


def describe(exc: BaseException) -> str:
    """The sv2_last_error() text: the typed error's message, or enough to file a bug."""
    if isinstance(exc, errors.Sv2Error):
        return str(exc) or type(exc).__name__
    where = ""
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}"
    return f"internal error: {type(exc).__name__}: {exc}{where}"


def set_last_error(text: str) -> None:
    lib.sv2i_set_error(text.encode("utf-8", "replace"))


def _onerror_for(ret: str) -> Callable:
    if ret == "Sv2Status":
        def onerror(exc_type, exc, tb):
            set_last_error(describe(exc))
            return status_of(exc)
    elif ret == "bool":
        def onerror(exc_type, exc, tb):
            set_last_error(describe(exc))
            return False
    else:  # pointers (-> NULL) and void
        def onerror(exc_type, exc, tb):
            set_last_error(describe(exc))
            return None
    return onerror


def install(ffi_: Any, lib_: Any) -> None:
    """Bind every Python-implemented function of the ABI (called by the library's init)."""
    global ffi, lib, MESSAGE_SIZE
    ffi, lib = ffi_, lib_
    MESSAGE_SIZE = ffi.sizeof("Sv2Message")
    for f in abi.python_functions():
        body = _IMPLS.get(f.name)
        if body is None:
            raise RuntimeError(f"libsv2: no Python body for {f.name}")
        ffi.def_extern(name=f.internal_name, onerror=_onerror_for(f.ret))(body)


# ---- argument helpers -----------------------------------------------------------------


def _need(p, what: str) -> None:
    if p == ffi.NULL:
        raise errors.InvalidArgumentError(f"{what} is NULL")


def _handle(p) -> int:
    return int(ffi.cast("uintptr_t", p))


def _input(data, n: int):
    """len bytes at data, as a buffer over C memory (copied by whoever keeps them)."""
    if n == 0:
        return b""
    if data == ffi.NULL:
        raise errors.InvalidArgumentError(f"data is NULL but len is {n}")
    return ffi.buffer(data, n)


def _key(p, what: str) -> bytes:
    _need(p, what)
    return ffi.buffer(p, KEY_SIZE)[:]


# ---- the C codec, for the connection paths ------------------------------------------------


class CodecStatus(errors.Sv2Error):
    """A failure of the C codec (sv2_codec.c), carried through Python with its status and
    text, so a connection reports exactly what sv2_encode / sv2_decode would."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = abi.STATUS_NAMES.get(status, "SV2_ERR_INTERNAL")


def _codec_error(status: int) -> CodecStatus:
    return CodecStatus(status, ffi.string(lib.sv2_last_error()).decode("utf-8", "replace"))


def _encode_c(msg_p) -> bytes:
    """The frame sv2_encode makes of a C message (the codec is C, not Python)."""
    frame = ffi.new("Sv2Bytes *")
    status = lib.sv2_encode(msg_p, frame)
    if status != OK:
        raise _codec_error(status)
    try:
        return ffi.unpack(ffi.cast("char *", frame.data), frame.len)
    finally:
        lib.sv2_bytes_free(frame)


def _decode_c(frame: bytes, out) -> int:
    """sv2_decode of one whole frame into the caller's *out; its status."""
    consumed = ffi.new("size_t *")
    return lib.sv2_decode(frame, len(frame), out, consumed)


def put_bytes(out, data: bytes) -> None:
    """Hand ``data`` to C as an Sv2Bytes the caller frees with sv2_bytes_free."""
    out.data = ffi.NULL
    out.len = 0
    if data:
        p = lib.sv2i_alloc(len(data))
        if p == ffi.NULL:
            raise MemoryError(f"malloc({len(data)}) failed")
        ffi.memmove(p, data, len(data))
        out.data = ffi.cast("uint8_t *", p)
        out.len = len(data)


# ---- connections ----------------------------------------------------------------------


class _ConnectionState:
    """A Connection plus what C has not collected yet.

    ``outbox`` keeps bytes from initiate()/send() in the order they were produced, so
    take_output() hands the socket act 1, act 2 and frames in protocol order.
    """

    __slots__ = ("conn", "inbox", "outbox", "failure")

    def __init__(self, conn: Any):
        self.conn = conn
        self.inbox: deque = deque()
        self.outbox = bytearray()
        self.failure: BaseException | None = None

    def check_usable(self) -> None:
        """Report a failure once with its own status, then SV2_ERR_CLOSED.

        The Connection may hold an error not yet reported: feed() returns the messages
        that arrived before garbage and keeps the error for the next call.
        """
        if self.failure is not None:
            raise errors.ConnectionClosed(f"the connection failed earlier: {self.failure}")
        if self.conn.error is not None:
            self.failure = self.conn.error
            raise self.conn.error

    def collect(self) -> None:
        self.outbox += self.conn.take_output()


def _new_connection(conn) -> Any:
    conn.frames_only = True  # connection_next decodes them with the C codec
    state = _ConnectionState(conn)
    state.outbox += conn.initiate()
    state.collect()
    return ffi.cast("Sv2Connection *", TABLE.add(CONNECTION, state))


@_impl
def connection_new_initiator(authority_p):
    from ..connection import Connection

    authority = None if authority_p == ffi.NULL else ffi.buffer(authority_p, KEY_SIZE)[:]
    return _new_connection(Connection.initiator(authority))


@_impl
def connection_new_responder(keys_p):
    from ..connection import Connection
    from ..keys import Certificate, Keypair

    _need(keys_p, "keys")
    static = Keypair(ffi.buffer(keys_p.static_secret)[:])
    if keys_p.certificate != ffi.NULL:
        cert = Certificate.from_bytes(ffi.buffer(keys_p.certificate, abi.CERTIFICATE_SIZE)[:])
        conn = Connection.responder(static, cert)
    else:
        authority = Keypair(ffi.buffer(keys_p.authority_secret)[:])
        if keys_p.validity:
            conn = Connection.responder_from_authority(static, authority,
                                                       validity=keys_p.validity)
        else:
            conn = Connection.responder_from_authority(static, authority)
    return _new_connection(conn)


@_impl
def connection_new_plain():
    from ..connection import Connection

    return _new_connection(Connection.plain())


@_impl
def connection_feed(conn_p, data, n):
    state = TABLE.get(CONNECTION, _handle(conn_p))
    state.check_usable()
    chunk = _input(data, n)
    try:
        messages = state.conn.feed(bytes(chunk))
    except errors.Sv2Error as e:
        state.failure = e
        raise
    state.inbox.extend(messages)
    state.collect()
    return OK


@_impl
def connection_next(conn_p, out):
    state = TABLE.get(CONNECTION, _handle(conn_p))
    _need(out, "out")
    ffi.memmove(out, bytes(MESSAGE_SIZE), MESSAGE_SIZE)
    while state.inbox:
        status = _decode_c(state.inbox.popleft().to_bytes(), out)
        if status == OK:
            return OK
        if status == abi.STATUS["SV2_ERR_UNKNOWN_MESSAGE"]:
            state.conn.unknown_messages += 1  # skipped, as Connection.feed does
            continue
        state.failure = _codec_error(status)  # a message that does not decode ends it
        raise state.failure
    state.check_usable()
    return NEED_MORE_DATA


@_impl
def connection_send(conn_p, msg_p):
    state = TABLE.get(CONNECTION, _handle(conn_p))
    _need(msg_p, "msg")
    state.check_usable()
    frame = _encode_c(msg_p)
    state.collect()
    state.outbox += state.conn.send_encoded(frame)
    return OK


@_impl
def connection_take_output(conn_p, out):
    _need(out, "out")
    out.data = ffi.NULL
    out.len = 0
    state = TABLE.get(CONNECTION, _handle(conn_p))
    state.collect()
    data = bytes(state.outbox)
    state.outbox.clear()
    put_bytes(out, data)
    return OK


@_impl
def connection_is_established(conn_p):
    return bool(TABLE.get(CONNECTION, _handle(conn_p)).conn.is_established)


@_impl
def connection_remote_pubkey(conn_p, out):
    state = TABLE.get(CONNECTION, _handle(conn_p))
    _need(out, "out")
    key = getattr(state.conn, "remote_static_xonly", None)
    if key is None:
        raise errors.InvalidArgumentError(
            "no remote static key: only initiators learn one, after the handshake")
    ffi.memmove(out, key, KEY_SIZE)
    return OK


@_impl
def connection_free(conn_p):
    if conn_p != ffi.NULL:
        TABLE.remove(CONNECTION, _handle(conn_p))


# ---- keys -----------------------------------------------------------------------------


def _put_keypair(out, kp) -> None:
    ffi.memmove(out.secret, kp.secret, KEY_SIZE)
    ffi.memmove(out.pubkey, kp.xonly, KEY_SIZE)


@_impl
def keypair_generate(out):
    from ..keys import Keypair

    _need(out, "out")
    _put_keypair(out, Keypair.generate())
    return OK


@_impl
def keypair_from_secret(secret_p, out):
    from ..keys import Keypair

    _need(out, "out")
    ffi.memmove(out, bytes(2 * KEY_SIZE), 2 * KEY_SIZE)
    _put_keypair(out, Keypair(_key(secret_p, "secret")))
    return OK


def _write_text(out, cap: int, text: str) -> int:
    """Copy ``text`` NUL-terminated into the caller's ``out[cap]``; too small a buffer is
    an error (with ``out`` set to "" when it has room for that), never a truncated key."""
    raw = text.encode("ascii") + b"\0"
    if cap < len(raw):
        if cap:
            out[0] = b"\0"
        raise errors.InvalidArgumentError(f"out needs {len(raw)} bytes, cap is {cap}")
    ffi.memmove(out, raw, len(raw))
    return OK


@_impl
def authority_pubkey_to_text(pubkey_p, out, cap):
    from ..keys import encode_authority_pubkey

    _need(out, "out")
    return _write_text(out, cap, encode_authority_pubkey(_key(pubkey_p, "pubkey")))


@_impl
def authority_pubkey_from_text(text_p, out):
    from ..keys import decode_authority_pubkey

    _need(out, "out")
    _need(text_p, "text")
    raw = ffi.string(text_p, MAX_TEXT)
    if len(raw) == MAX_TEXT:
        raise errors.KeyFormatError(f"no NUL within {MAX_TEXT} bytes: not a key")
    key = decode_authority_pubkey(raw.decode("ascii", "replace").strip())
    ffi.memmove(out, key, KEY_SIZE)
    return OK


# ---- embedded template provider ----------------------------------------------------------

TP = "Sv2Tp"
MAX_CONFIG_TEXT = 4096  # longest string read from Sv2TpConfig


def _config_text(p, what: str, default: str | None = None) -> str:
    if p == ffi.NULL:
        if default is None:
            raise errors.InvalidArgumentError(f"cfg->{what} is NULL")
        return default
    raw = ffi.string(p, MAX_CONFIG_TEXT)
    if len(raw) == MAX_CONFIG_TEXT:
        raise errors.InvalidArgumentError(f"cfg->{what}: no NUL within {MAX_CONFIG_TEXT} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidArgumentError(f"cfg->{what} is not UTF-8 text") from None


def _c_solution_callback(fn, user) -> Callable[[bytes], None] | None:
    """A Python callable calling the node's C function; cffi releases the GIL around the
    C call, so the node may block in it (or call back into libsv2) freely."""
    if fn == ffi.NULL:
        return None

    def call(block: bytes) -> None:
        buf = ffi.from_buffer("uint8_t[]", block)
        fn(user, buf, len(block))

    return call


@_impl
def tp_new(cfg_p):
    from .embedded_tp import EmbeddedTp

    _need(cfg_p, "cfg")
    tp = EmbeddedTp(network=_config_text(cfg_p.network, "network"),
                    datadir=_config_text(cfg_p.datadir, "datadir"),
                    host=_config_text(cfg_p.bind_address, "bind_address", "127.0.0.1"),
                    port=int(cfg_p.port), fee_delta=int(cfg_p.fee_delta),
                    template_interval=cfg_p.template_interval_ms / 1000.0,
                    on_solution=_c_solution_callback(cfg_p.on_solution, cfg_p.user))
    return ffi.cast("Sv2Tp *", TABLE.add(TP, tp))


@_impl
def tp_start(tp_p):
    TABLE.get(TP, _handle(tp_p)).start()
    return OK


@_impl
def tp_port(tp_p):
    return TABLE.get(TP, _handle(tp_p)).port


@_impl
def tp_authority_pubkey(tp_p, out, cap):
    tp = TABLE.get(TP, _handle(tp_p))
    _need(out, "out")
    return _write_text(out, cap, tp.authority_pubkey)


@_impl
def tp_push_template(tp_p, block_p, n):
    tp = TABLE.get(TP, _handle(tp_p))
    if n == 0:
        raise errors.InvalidArgumentError("block is empty (len 0)")
    tp.push(bytes(_input(block_p, n)))
    return OK


@_impl
def tp_stop(tp_p):
    TABLE.get(TP, _handle(tp_p)).stop()
    return OK


@_impl
def tp_free(tp_p):
    if tp_p == ffi.NULL:
        return
    tp = TABLE.get(TP, _handle(tp_p))
    tp.stop()  # refused (and the handle kept) inside the callback
    TABLE.remove(TP, _handle(tp_p))

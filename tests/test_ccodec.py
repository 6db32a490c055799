"""The C codec (sv2_codec.c, generated from the schema) against the Python codec.

Differential: the same bytes go into both, and what comes out must be the same: the same
frames after a round trip, and for bad input the same status and the same text (message,
field and byte offset included).  Runs against both forms of the C code: the standalone
pair compiled here, and libsv2 (where the same code is compiled with SV2_CODEC_LIBSV2),
both loaded into this process with cffi.
"""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sv2ffi import codec, errors, framing, jsonform, schema
from sv2ffi.capi import abi, codegen
from sv2ffi.messages import CLASSES

from conftest import load_vectors
from strategies import message_strategy

cffi = pytest.importorskip("cffi")
pytestmark = pytest.mark.skipif(not shutil.which("gcc"), reason="gcc is needed")

VECTORS = [v for v in load_vectors("messages.json")["vectors"] if not v.get("legacy")]
OK, NEED_MORE = 0, 1
STATUS = abi.STATUS


class C:
    """One loaded build of the C codec, with Python-friendly calls."""

    def __init__(self, path: str, name: str):
        self.name = name
        self.ffi = cffi.FFI()
        self.ffi.cdef(codegen.render_codec_cdef())
        self.lib = self.ffi.dlopen(path)

    def error(self) -> str:
        return self.ffi.string(self.lib.sv2_last_error()).decode("utf-8", "replace")

    def decode(self, frame: bytes):
        """(status, message struct or error text, consumed)."""
        out = self.ffi.new("Sv2Message *")
        consumed = self.ffi.new("size_t *")
        status = self.lib.sv2_decode(frame, len(frame), out, consumed)
        if status != OK:
            return status, self.error(), consumed[0]
        return status, self.ffi.gc(out, self.lib.sv2_message_free), consumed[0]

    def encode(self, msg_p):
        """(status, frame bytes or error text); checks encoded_size and encode_into agree."""
        frame = self.ffi.new("Sv2Bytes *")
        status = self.lib.sv2_encode(msg_p, frame)
        if status != OK:
            text = self.error()
            size = self.ffi.new("size_t *")
            assert self.lib.sv2_encoded_size(msg_p, size) == status and self.error() == text
            return status, text
        data = self.ffi.unpack(self.ffi.cast("char *", frame.data), frame.len)
        self.lib.sv2_bytes_free(frame)
        size = self.ffi.new("size_t *")
        assert self.lib.sv2_encoded_size(msg_p, size) == OK and size[0] == len(data)
        buf = self.ffi.new("uint8_t[]", len(data) + 1)
        written = self.ffi.new("size_t *")
        assert self.lib.sv2_encode_into(msg_p, buf, len(data), written) == OK
        assert bytes(self.ffi.buffer(buf, written[0])) == data
        assert self.lib.sv2_encode_into(msg_p, buf, len(data) - 1, written) \
            == STATUS["SV2_ERR_INVALID_ARGUMENT"] and written[0] == len(data)
        return status, data

    def stream(self, data: bytes, chunks: list[int], max_payload: int | None = None) -> list:
        """Feed data in chunks to a streaming decoder; every result in order: frames
        (re-encoded by C) or (status, text)."""
        lib = self.lib
        dec = lib.sv2_decoder_new() if max_payload is None else \
            lib.sv2_decoder_new_with_limit(max_payload)
        results, pos = [], 0
        out = self.ffi.new("Sv2Message *")
        try:
            for n in chunks + [len(data)]:
                assert lib.sv2_decoder_feed(dec, data[pos:pos + n], len(data[pos:pos + n])) == OK
                pos += n
                while True:
                    status = lib.sv2_decoder_next(dec, out)
                    if status == NEED_MORE:
                        break
                    if status == OK:
                        results.append(self.encode(out)[1])
                        lib.sv2_message_free(out)
                        continue
                    results.append((status, self.error()))
                    if status == STATUS["SV2_ERR_PAYLOAD_TOO_BIG"]:
                        return results
                if pos >= len(data):
                    break
        finally:
            lib.sv2_decoder_free(dec)
        return results


@pytest.fixture(scope="module", params=["standalone", "libsv2"])
def c(request, tmp_path_factory):
    if request.param == "standalone":
        d = tmp_path_factory.mktemp("codec")
        (d / codegen.CODEC_HEADER).write_text(codegen.render_codec_header())
        (d / codegen.CODEC_SOURCE).write_text(codegen.render_codec_source())
        subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-shared", "-fPIC", "-Wall", "-Wextra",
                        "-Werror", "-pedantic", str(d / codegen.CODEC_SOURCE), "-o",
                        str(d / "libsv2codec.so")], check=True, timeout=300)
        return C(str(d / "libsv2codec.so"), "standalone")
    if not shutil.which("cmake"):
        pytest.skip("cmake is needed to build libsv2")
    from sv2ffi.capi import devbuild

    return C(str(devbuild.build_once().lib_dir / "libsv2.so"), "libsv2")


def python_result(key, payload: bytes):
    """The Python codec's answer as (status, text) or (OK, frame re-encoded)."""
    try:
        msg = codec.decode_payload(*key, payload)
    except errors.Sv2Error as e:
        return STATUS[e.status], str(e)
    return OK, framing.encode_message(msg)


def frame_of(key, payload: bytes, channel: bool | None = None) -> bytes:
    spec = schema.MESSAGES_BY_KEY.get(key)
    if channel is None:
        channel = bool(spec and spec.channel_msg)
    return framing.encode_header(key[0], channel, key[1], len(payload)) + payload


def c_result(c: C, frame: bytes):
    status, value, consumed = c.decode(frame)
    assert consumed == (len(frame) if status != NEED_MORE else 0)
    if status != OK:
        return status, value
    status, data = c.encode(value)
    assert status == OK, data
    return OK, data


# ---- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES.values(), ids=lambda cls: cls.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips_byte_for_byte(c, cls, data):
    msg = data.draw(message_strategy(cls))
    frame = framing.encode_message(msg)
    assert c_result(c, frame) == (OK, frame)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(msgs=st.lists(st.one_of(*[message_strategy(k) for k in CLASSES.values()]), min_size=1,
                     max_size=8), seed=st.integers(0, 2**32))
def test_streaming_decoder_in_any_chunking(c, msgs, seed):
    frames = [framing.encode_message(m) for m in msgs]
    rng = random.Random(seed)
    wire = b"".join(frames)
    chunks = [rng.choice([1, 2, 5, 6, 7, 64, 1000]) for _ in range(len(wire))]
    assert c.stream(wire, chunks) == frames


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["id"])
def test_vectors(c, v):
    frame = framing.encode_message(jsonform.message_from_json(v))
    assert frame[6:].hex() == v["payload"]
    assert c_result(c, frame) == (OK, frame)


# ---- identical errors ------------------------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["id"])
def test_every_truncation_point_gives_the_python_error(c, v):
    spec = schema.message_spec(v["type"])
    key = (spec.extension_type, spec.msg_type)
    payload = bytes.fromhex(v["payload"])
    for cut in range(len(payload) + 2):
        p = payload[:cut] if cut <= len(payload) else payload + b"\0" * (cut - len(payload))
        assert c_result(c, frame_of(key, p)) == python_result(key, p), (v["id"], cut)


KEYS = sorted(schema.MESSAGES_BY_KEY) + [(0, 0x99), (1, 0x09), (0, 0x1E)]


@settings(max_examples=1500, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), payload=st.binary(max_size=300))
def test_random_payloads_give_the_python_answer(c, key, payload):
    assert c_result(c, frame_of(key, payload)) == python_result(key, payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(msg=st.one_of(*[message_strategy(k) for k in CLASSES.values()]),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
       cut=st.integers(0, 10_000))
def test_mangled_messages_give_the_python_answer(c, msg, flips, cut):
    """Valid payloads with a few bytes changed and cut anywhere: lengths and counts that
    lie, values out of range, bits of booleans."""
    key = (msg.SPEC.extension_type, msg.SPEC.msg_type)
    payload = bytearray(codec.encode_payload(msg))
    for pos, x in flips:
        if payload:
            payload[pos % len(payload)] ^= x
    payload = bytes(payload[:cut % (len(payload) + 1)])
    assert c_result(c, frame_of(key, payload)) == python_result(key, payload)


@pytest.mark.parametrize("bits", ["0000c07f", "0100807f", "123481ff", "0000807f", "ffffff7f"])
def test_f32_nan_and_infinity_decode_like_python(c, bits):
    """A signalling NaN comes out quiet in both codecs (Python's float cannot hold it)."""
    payload = (7).to_bytes(4, "little") + bytes.fromhex(bits) + bytes(32)
    assert c_result(c, frame_of((0, 0x16), payload)) == python_result((0, 0x16), payload)


def python_stream(data: bytes, max_payload: int) -> list:
    dec = framing.MessageDecoder(max_payload)
    dec.feed(data)
    results = []
    while True:
        try:
            msg = dec.next_message()
        except errors.Sv2Error as e:
            results.append((STATUS[e.status], str(e)))
            if isinstance(e, errors.FrameTooLargeError):
                return results
            continue
        if msg is None:
            return results
        results.append(framing.encode_message(msg))


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(parts=st.lists(st.one_of(
    st.builds(lambda m: framing.encode_message(m),
              st.one_of(*[message_strategy(k) for k in CLASSES.values()])),
    st.tuples(st.sampled_from([0, 1, 2, 0x8000, 0x8001, 0x4001]), st.integers(0, 255),
              st.binary(max_size=60)).map(
        lambda t: t[0].to_bytes(2, "little") + bytes([t[1]]) + len(t[2]).to_bytes(3, "little")
        + t[2])), max_size=10),
    limit=st.sampled_from([schema.MAX_PAYLOAD, 40, 0]), seed=st.integers(0, 2**32))
def test_streams_of_good_and_bad_frames_give_the_python_answers(c, parts, limit, seed):
    """Unknown extensions skipped, unknown types and bad payloads reported and passed,
    channel bits checked, a frame above the decoder's limit ends the stream."""
    wire = b"".join(parts)
    rng = random.Random(seed)
    chunks = [rng.randrange(1, 50) for _ in range(len(wire))]
    assert c.stream(wire, chunks, limit) == python_stream(wire, limit)


def _plain_value(f):
    t = f.type
    if f.choices is not None:
        return min(f.choices)
    return {"int": 1, "bool": True, "f32": 1.5, "fixed": b"\x01" * (t.size or 0),
            "bytes": "ab" if t.text else b"ab"}.get(t.kind, None if t.max_len == 1 else [])


def _member(out, spec):
    return getattr(out, spec.snake_name)


INVALID = []
for _spec in schema.MESSAGES:
    for _f in _spec.fields:
        t = _f.type
        if t.kind == "bytes" or (t.kind == "seq" and t.max_len > 1):
            INVALID.append((_spec, _f, "too long"))
        if t.kind == "bool":
            INVALID.append((_spec, _f, "bool 2"))
        if _f.choices is not None:
            INVALID.append((_spec, _f, "choice"))


@pytest.mark.parametrize("spec,field,how", INVALID,
                         ids=[f"{s.name}.{f.name}-{h}" for s, f, h in INVALID])
def test_encoding_refuses_what_python_refuses_with_the_same_text(c, spec, field, how):
    """A C message with a value its SV2 type cannot carry: the text is the Python
    codec's for the same value in a Python message."""
    cls = CLASSES[spec.class_name]
    msg = cls(**{f.name: _plain_value(f) for f in spec.fields})
    status, out, _ = c.decode(framing.encode_message(msg))
    assert status == OK
    ffi = c.ffi
    member = _member(out, spec)
    keep = []
    t = field.type
    if how == "too long":
        n = t.max_len + 1
        if t.kind == "bytes":
            buf = ffi.new("uint8_t[]", n)
            keep.append(buf)
            setattr(member, field.name, {"data": buf, "len": n})
            bad = "x" * n if t.text else b"\0" * n
        else:
            elems = ffi.new("uint8_t[]", 8)
            keep.append(elems)
            seq = getattr(member, field.name)
            seq.elements = ffi.cast(ffi.typeof(seq.elements), elems)
            seq.len = n
            bad = [None] * n
    elif how == "bool 2":
        offset = ffi.offsetof("Sv2Message", spec.snake_name) + \
            ffi.offsetof(f"Sv2{spec.class_name}", field.name)
        ffi.memmove(ffi.cast("uint8_t *", out) + offset, b"\x02", 1)
        bad = 2
    else:
        setattr(member, field.name, 7)
        bad = 7
    py = cls(**{**msg.fields(), field.name: bad})
    with pytest.raises(errors.EncodeError) as e:
        codec.encode_payload(py)
    assert c.encode(out) == (STATUS["SV2_ERR_INVALID_ARGUMENT"], str(e.value))


def test_a_frame_above_the_maximum_payload_is_refused_like_python(c):
    ffi = c.ffi
    out = ffi.new("Sv2Message *")
    out.type = 0x56  # ProvideMissingTransactions.Success: 2 x (3 + 16 MiB - 1)
    big = ffi.new("uint8_t[]", schema.MAX_PAYLOAD)
    txs = ffi.new("Sv2Bytes[2]", [{"data": big, "len": schema.MAX_PAYLOAD}] * 2)
    out.provide_missing_transactions_success.transaction_list = {"elements": txs, "len": 2}
    status, text = c.encode(out)
    assert status == STATUS["SV2_ERR_PAYLOAD_TOO_BIG"]
    assert text == str(errors.FrameTooLargeError(4 + 2 + 2 * (3 + schema.MAX_PAYLOAD),
                                                 schema.MAX_PAYLOAD))


def test_misuse_is_refused_with_the_python_texts(c):
    ffi, lib = c.ffi, c.lib
    frame = ffi.new("Sv2Bytes *")
    assert lib.sv2_encode(ffi.NULL, frame) == STATUS["SV2_ERR_INVALID_ARGUMENT"]
    assert c.error() == "msg is NULL"
    assert lib.sv2_encode(ffi.new("Sv2Message *"), ffi.NULL) == STATUS["SV2_ERR_INVALID_ARGUMENT"]
    assert c.error() == "frame is NULL"
    bad = ffi.new("Sv2Message *")
    bad.type = 0x7F
    assert c.encode(bad) == (STATUS["SV2_ERR_INVALID_ARGUMENT"],
                             "Sv2Message.type 127 is not a known SV2_MSG_* value")
    assert lib.sv2_decoder_new_with_limit(schema.MAX_PAYLOAD + 1) == ffi.NULL
    assert c.error() == f"max_payload must be in 0..{schema.MAX_PAYLOAD}"
    dec = lib.sv2_decoder_new()
    assert lib.sv2_decoder_feed(dec, ffi.NULL, 3) == STATUS["SV2_ERR_INVALID_ARGUMENT"]
    assert c.error() == "data is NULL but len is 3"
    assert lib.sv2_decoder_next(dec, ffi.NULL) == STATUS["SV2_ERR_INVALID_ARGUMENT"]
    assert c.error() == "out is NULL"
    lib.sv2_decoder_free(dec)
    assert lib.sv2_decoder_next(ffi.NULL, ffi.new("Sv2Message *")) == \
        STATUS["SV2_ERR_INVALID_ARGUMENT"]
    assert c.error() == "Sv2Decoder handle is NULL"
    # one-shot decode: need more, then a frame of an extension without messages
    out = ffi.new("Sv2Message *")
    consumed = ffi.new("size_t *")
    assert lib.sv2_decode(b"\0\0\x73\x08\0", 5, out, consumed) == NEED_MORE and consumed[0] == 0
    assert lib.sv2_decode(b"\x05\0\x01\0\0\0rest", 10, out, consumed) == \
        STATUS["SV2_ERR_UNKNOWN_MESSAGE"] and consumed[0] == 6
    assert "0x0005" in c.error()
    assert ffi.string(lib.sv2_status_name(-4)) == b"SV2_ERR_DECODE"

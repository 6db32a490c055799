"""Frame header and the streaming decoders, fed in every chunking we can think of."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sv2ffi import errors, framing
from sv2ffi.framing import Frame, FrameDecoder, MessageDecoder, encode_message
from sv2ffi.messages import (ChannelEndpointChanged, RequestTransactionData,
                             RequestTransactionDataSuccess, SetupConnectionSuccess)

from strategies import any_message


def _frames(n=40, seed=1):
    rng = random.Random(seed)
    msgs = []
    for i in range(n):
        kind = rng.randrange(3)
        if kind == 0:
            msgs.append(RequestTransactionData(i))
        elif kind == 1:
            msgs.append(SetupConnectionSuccess(2, i))
        else:
            msgs.append(RequestTransactionDataSuccess(
                i, bytes(32), [bytes(rng.randrange(1, 400)) for _ in range(rng.randrange(5))]))
    return msgs


def test_one_byte_at_a_time():
    msgs = _frames()
    wire = b"".join(encode_message(m) for m in msgs)
    dec = MessageDecoder()
    got = []
    for b in wire:
        dec.feed(bytes([b]))
        while (m := dec.next_message()) is not None:
            got.append(m)
    assert got == msgs
    assert dec.frames.buffered == 0


def test_many_frames_in_one_chunk():
    msgs = _frames(200, seed=2)
    dec = MessageDecoder()
    dec.feed(b"".join(encode_message(m) for m in msgs))
    got = []
    while (m := dec.next_message()) is not None:
        got.append(m)
    assert got == msgs


@settings(max_examples=60, deadline=None)
@given(msgs=st.lists(any_message(), min_size=1, max_size=12), seed=st.integers(0, 2**32))
def test_random_chunk_sizes(msgs, seed):
    rng = random.Random(seed)
    wire = b"".join(encode_message(m) for m in msgs)
    dec = MessageDecoder()
    got, pos = [], 0
    while pos < len(wire):
        step = rng.choice([1, 2, 3, 5, 6, 7, 64, 1000, len(wire)])
        dec.feed(wire[pos:pos + step])
        pos += step
        while (m := dec.next_message()) is not None:
            got.append(m)
    assert got == msgs


def test_need_more_data_is_none():
    dec = FrameDecoder()
    assert dec.next_frame() is None
    dec.feed(bytes.fromhex("000073"))
    assert dec.next_frame() is None
    dec.feed(bytes.fromhex("080000") + bytes(7))
    assert dec.next_frame() is None
    dec.feed(b"\x05")
    assert dec.next_frame() == Frame(0, 0x73, bytes(7) + b"\x05")


def test_frame_too_large_for_configured_limit_is_sticky():
    dec = FrameDecoder(max_payload=1024)
    dec.feed(framing.encode_header(0, False, 0x76, 1025))
    with pytest.raises(errors.FrameTooLargeError) as e:
        dec.next_frame()
    assert e.value.length == 1025 and e.value.limit == 1024
    dec.feed(bytes(2000))
    with pytest.raises(errors.FrameTooLargeError):  # no resynchronisation after a bad header
        dec.next_frame()


def test_payload_over_u24_cannot_be_encoded():
    with pytest.raises(errors.FrameTooLargeError):
        framing.encode_header(0, False, 0x74, 1 << 24)
    big = RequestTransactionDataSuccess(1, b"", [bytes((1 << 24) - 1)])
    with pytest.raises(errors.FrameTooLargeError):
        encode_message(big)


def test_max_payload_frame_is_accepted():
    tx = bytes((1 << 24) - 1 - 8 - 2 - 2 - 3)
    msg = RequestTransactionDataSuccess(1, b"", [tx])
    wire = encode_message(msg)
    assert int.from_bytes(wire[3:6], "little") == (1 << 24) - 1
    dec = MessageDecoder()
    dec.feed(wire)
    assert dec.next_message() == msg


def test_unknown_message_type_is_recoverable():
    dec = MessageDecoder()
    dec.feed(Frame(0, 0x5A, b"\x01\x02").to_bytes() + encode_message(RequestTransactionData(9)))
    with pytest.raises(errors.UnknownMessageError) as e:
        dec.next_message()
    assert e.value.msg_type == 0x5A
    assert dec.next_message() == RequestTransactionData(9)


def test_unknown_extension_frames_are_discarded():
    dec = MessageDecoder()
    dec.feed(Frame(0x0002, 0x00, b"\x00\x00").to_bytes()
             + Frame(0x4001, 0x71, b"x", channel_msg=True).to_bytes()
             + encode_message(RequestTransactionData(3)))
    assert dec.next_message() == RequestTransactionData(3)
    assert dec.discarded == 2


def test_extension_messages_are_told_apart_from_common_ones_by_extension_type():
    """RequestExtensions (extension 0x0001, msg_type 0x00) and SetupConnection (0, 0x00)."""
    from sv2ffi.messages import RequestExtensions, SetupConnectionSuccess

    req = encode_message(RequestExtensions(7, [2, 3]))
    assert req.hex() == "0100" "00" "080000" "0700" "0200" "0200" "0300"
    dec = MessageDecoder()
    dec.feed(req + encode_message(SetupConnectionSuccess(2, 0)))
    assert dec.next_message() == RequestExtensions(7, [2, 3])
    assert dec.next_message() == SetupConnectionSuccess(2, 0)
    dec.feed(Frame(0x0001, 0x09, b"").to_bytes())  # known extension, unknown msg_type
    with pytest.raises(errors.UnknownMessageError) as e:
        dec.next_message()
    assert "extension_type 0x0001" in str(e.value)
    assert dec.discarded == 0


def test_channel_bit_must_match_schema():
    wire = encode_message(ChannelEndpointChanged(7))
    assert wire[:2] == b"\x00\x80"
    dec = MessageDecoder()
    dec.feed(wire)
    assert dec.next_message() == ChannelEndpointChanged(7)
    bad = Frame(0, 0x73, (1).to_bytes(8, "little"), channel_msg=True)
    with pytest.raises(errors.DecodeError):
        framing.decode_frame(bad)


def test_header_field_ranges():
    with pytest.raises(errors.EncodeError):
        framing.encode_header(0x8000, False, 0, 0)
    with pytest.raises(errors.EncodeError):
        framing.encode_header(0, False, 256, 0)
    with pytest.raises(errors.FramingError):
        framing.decode_header(b"\x00" * 5)


def test_garbage_stream_only_typed_errors():
    rng = random.Random(7)
    for _ in range(300):
        dec = MessageDecoder(max_payload=4096)
        dec.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))))
        for _ in range(50):
            try:
                if dec.next_message() is None:
                    break
            except errors.FrameTooLargeError:
                break
            except (errors.CodecError,):
                continue


@settings(max_examples=200, deadline=None)
@given(any_message())
def test_a_fixed_size_messages_packed_frame_is_encode_messages(msg):
    """``fixed_frame_packer`` (a tip's SetNewPrevHash, framed on the way to the clients)
    makes exactly ``encode_message``'s bytes for every message whose fields are all
    fixed-size, and refuses the others when asked for one."""
    cls = type(msg)
    try:
        pack = framing.fixed_frame_packer(cls)
    except ValueError:
        plan = framing.codec._PLANS[cls]
        assert plan.tlvs or any(run is None for _, _, run in plan.steps) \
            or len(plan.steps) != 1
        return
    assert pack(*msg.fields().values()) == encode_message(msg)


def test_a_packed_frames_byte_strings_must_have_their_size():
    from sv2ffi.messages import SetNewPrevHash
    pack = framing.fixed_frame_packer(SetNewPrevHash)
    ok = pack(1, b"\x01" * 32, 2, 0x207FFFFF, b"\x02" * 32)
    assert ok == encode_message(SetNewPrevHash(1, b"\x01" * 32, 2, 0x207FFFFF, b"\x02" * 32))
    with pytest.raises(errors.EncodeError, match="prev_hash"):
        pack(1, b"\x01" * 31, 2, 0x207FFFFF, b"\x02" * 32)  # struct would pad it
    with pytest.raises(errors.EncodeError, match="target"):
        pack(1, b"\x01" * 32, 2, 0x207FFFFF, b"\x02" * 33)  # struct would cut it

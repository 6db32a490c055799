"""Round-trip properties for every message and every type, generated from the schema."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sv2ffi import codec, errors, framing, jsonform
from sv2ffi.messages import CLASSES

from strategies import ALL_TYPES, message_strategy, value_strategy


@pytest.mark.parametrize("cls", CLASSES.values(), ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_message_round_trip(cls, data):
    msg = data.draw(message_strategy(cls))
    payload = codec.encode_payload(msg)
    assert codec.decode_payload(0, cls.SPEC.msg_type, payload) == msg
    frame = framing.encode_message(msg)
    dec = framing.MessageDecoder()
    dec.feed(frame)
    assert dec.next_message() == msg
    # the CLI's JSON form is exact too
    assert jsonform.frame_from_json(jsonform.message_to_json(msg)) == frame


@pytest.mark.parametrize("t", ALL_TYPES, ids=lambda t: t.name)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_type_round_trip(t, data):
    value = data.draw(value_strategy(t))
    raw = codec.encode_value(t, value)
    assert codec.decode_value(t, raw) == value
    if t.fixed_size is not None:
        assert len(raw) == t.fixed_size


@settings(max_examples=300, deadline=None)
@given(msg_type=st.sampled_from([c.SPEC.msg_type for c in CLASSES.values()]),
       payload=st.binary(max_size=200))
def test_decoding_arbitrary_bytes_never_raises_untyped(msg_type, payload):
    try:
        msg = codec.decode_payload(0, msg_type, payload)
    except errors.CodecError:
        return
    # whatever decodes re-encodes to a payload that decodes to the same message
    assert codec.decode_payload(0, msg_type, codec.encode_payload(msg)) == msg

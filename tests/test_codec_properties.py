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
    assert codec.decode_payload(cls.SPEC.extension_type, cls.SPEC.msg_type, payload) == msg
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


KEYS = [(c.SPEC.extension_type, c.SPEC.msg_type) for c in CLASSES.values()]


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(KEYS), payload=st.binary(max_size=200))
def test_decoding_arbitrary_bytes_never_raises_untyped(key, payload):
    try:
        msg = codec.decode_payload(*key, payload)
    except errors.CodecError:
        return
    # whatever decodes re-encodes to a payload that decodes to the same message
    assert codec.decode_payload(*key, codec.encode_payload(msg)) == msg


@settings(max_examples=200, deadline=None)
@given(msg=message_strategy(CLASSES["SubmitSharesExtended"]),
       others=st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 255),
                                 st.binary(max_size=40)), max_size=3),
       position=st.integers(0, 3))
def test_tlvs_of_other_extensions_are_skipped_wherever_they_are(msg, others, position):
    """Spec 3.4.3: TLV fields the receiver did not negotiate are ignored, in any order."""
    base = codec.encode_payload(type(msg)(**{**msg.fields(), "user_identity": None}))
    own = codec.encode_payload(msg)[len(base):]
    foreign = [ext.to_bytes(2, "little") + bytes([ft]) + len(v).to_bytes(2, "little") + v
               for ext, ft, v in others if (ext, ft) != (0x0002, 0x01)]
    foreign.insert(min(position, len(foreign)), own)
    assert codec.decode_payload(0, 0x1B, base + b"".join(foreign)) == msg


def _per_field_only(plan):
    return [(i, 1, None) for i in range(len(plan.fields))]


@settings(max_examples=300, deadline=None)
@given(msg=st.one_of(*[message_strategy(c) for c in CLASSES.values()]),
       noise=st.binary(max_size=120))
def test_struct_runs_behave_exactly_like_the_per_field_path(msg, noise):
    """The struct fast path is an optimisation only: same bytes, same values, same errors."""
    plan = codec._PLANS[type(msg)]
    fast_steps = plan.steps

    def both(fn):
        results = []
        for steps in (fast_steps, _per_field_only(plan)):
            plan.steps = steps
            try:
                results.append(("ok", fn()))
            except errors.CodecError as e:
                results.append((type(e), str(e)))
            finally:
                plan.steps = fast_steps
        return results

    a, b = both(lambda: codec.encode_payload(msg))
    assert a == b
    payload = a[1]
    for data in (payload, payload[:len(noise) % (len(payload) + 1)], payload + noise[:1], noise):
        a, b = both(lambda: codec.decode_payload(msg.SPEC.extension_type, msg.SPEC.msg_type,
                                                 data))
        assert a == b

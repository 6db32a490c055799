"""Strict decoding: every malformed payload is a typed error naming message, field, offset."""

import os
import random

import pytest

from sv2ffi import codec, errors, schema
from sv2ffi.messages import (CoinbaseOutputConstraints, NewTemplate, RequestTransactionDataSuccess,
                             SetNewPrevHash, SetupConnection, SubmitSolution)

from conftest import load_vectors

VECTORS = [v for v in load_vectors("messages.json")["vectors"] if not v.get("legacy")]


def _type_of(v):
    return schema.message_spec(v["type"]).msg_type


def _cases():
    for v in VECTORS:
        payload = bytes.fromhex(v["payload"])
        for cut in range(len(payload)):
            yield pytest.param(v, cut, id=f"{v['id']}-{cut}")


@pytest.mark.parametrize("v,cut", list(_cases()))
def test_every_truncation_point_is_a_typed_error(v, cut):
    payload = bytes.fromhex(v["payload"])
    msg_type = _type_of(v)
    if msg_type == 0x70 and cut == 4:
        # the legacy CoinbaseOutputDataSize form is exactly the first 4 bytes
        assert codec.decode_payload(0, msg_type, payload[:cut]).coinbase_output_max_additional_sigops == 400
        return
    with pytest.raises(errors.TruncatedError) as e:
        codec.decode_payload(0, msg_type, payload[:cut])
    assert e.value.message == v["type"]
    assert e.value.field is not None
    assert e.value.offset is not None and e.value.offset <= cut
    assert v["type"] in str(e.value) and "byte" in str(e.value)


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["id"])
def test_trailing_bytes_are_refused(v):
    payload = bytes.fromhex(v["payload"]) + b"\x00"
    with pytest.raises(errors.TrailingBytesError) as e:
        codec.decode_payload(0, _type_of(v), payload)
    assert e.value.offset == len(payload) - 1


def test_error_names_field_and_offset():
    # SetupConnection with endpoint_host claiming 9 bytes but only 7 left
    payload = bytes.fromhex("02020002000000000009302e302e302e30")
    with pytest.raises(errors.TruncatedError) as e:
        codec.decode_payload(0, 0x00, payload)
    assert (e.value.message, e.value.field, e.value.offset) == ("SetupConnection",
                                                                 "endpoint_host", 10)


def test_invalid_protocol_value():
    payload = bytearray.fromhex("02020002000000000000000000000000")
    payload[0] = 7
    with pytest.raises(errors.InvalidValueError) as e:
        codec.decode_payload(0, 0x00, bytes(payload))
    assert e.value.field == "protocol" and e.value.offset == 0


def test_length_above_type_maximum():
    # B0_32 is the one byte string whose prefix can exceed its maximum
    with pytest.raises(errors.LengthExceedsMaxError) as e:
        codec.decode_value(schema.B0_32, bytes([33]) + bytes(33))
    assert "33" in str(e.value) and "32" in str(e.value) and e.value.offset == 0


def test_option_with_two_elements_is_refused():
    with pytest.raises(errors.SequenceTooLongError):
        codec.decode_value(schema.OPTION(schema.U8), b"\x02\x01\x02")
    assert codec.decode_value(schema.OPTION(schema.U8), b"\x01\x07") == 7
    assert codec.decode_value(schema.OPTION(schema.U8), b"\x00") is None


def test_bool_reads_bit_zero_only():
    assert codec.decode_value(schema.BOOL, b"\x03") is True
    assert codec.decode_value(schema.BOOL, b"\xfe") is False
    payload = bytearray(codec.encode_payload(NewTemplate(1, True, 0, 0, b"", 0, 0, 0, b"", 0, [])))
    payload[8] = 0x81
    assert codec.decode_payload(0, 0x71, bytes(payload)).future_template is True


def test_u24_and_sequence_limits():
    assert codec.decode_value(schema.U24, b"\xff\xff\xff") == (1 << 24) - 1
    seq = codec.encode_value(schema.SEQ0_64K(schema.U8), list(range(256)) * 3)
    assert seq[:2] == (768).to_bytes(2, "little")


@pytest.mark.parametrize("msg,field", [
    (SetNewPrevHash(1, b"\x00" * 31, 0, 0, bytes(32)), "prev_hash"),
    (SetNewPrevHash(1 << 64, bytes(32), 0, 0, bytes(32)), "template_id"),
    (SetNewPrevHash(-1, bytes(32), 0, 0, bytes(32)), "template_id"),
    (CoinbaseOutputConstraints(1, 65536), "coinbase_output_max_additional_sigops"),
    (SubmitSolution(1, 0, 0, 0, bytes(65536)), "coinbase_tx"),
    (SetupConnection(3, 2, 2, 0, "", 0, "", "", "", ""), "protocol"),
    (SetupConnection(2, 2, 2, 0, "x" * 256, 0, "", "", "", ""), "endpoint_host"),
    (SetupConnection(2, 2, 2, 0, b"bytes", 0, "", "", "", ""), "endpoint_host"),
    (NewTemplate(1, "yes", 0, 0, b"", 0, 0, 0, b"", 0, []), "future_template"),
    (NewTemplate(1, True, 0, 0, b"", 0, 0, 0, b"", 0, [bytes(32)] * 256), "merkle_path"),
    (NewTemplate(1, True, 0, 0, b"", 0, 0, 0, b"", 0, [bytes(31)]), "merkle_path"),
    (RequestTransactionDataSuccess(1, b"", "not a list"), "transaction_list"),
    (NewTemplate(1.5, True, 0, 0, b"", 0, 0, 0, b"", 0, []), "template_id"),
])
def test_encoding_refuses_values_that_do_not_fit(msg, field):
    with pytest.raises(errors.EncodeError) as e:
        codec.encode_payload(msg)
    assert e.value.field == field
    assert msg.SPEC.name in str(e.value)


def test_encoding_refuses_non_messages():
    with pytest.raises(errors.EncodeError):
        codec.encode_payload(object())


def test_unknown_message_type_is_typed():
    with pytest.raises(errors.UnknownMessageError) as e:
        codec.decode_payload(0, 0x99, b"")
    assert e.value.msg_type == 0x99 and "0x99" in str(e.value)


def test_garbage_only_raises_typed_errors():
    rng = random.Random(20261121)
    keys = [(0, m.msg_type) for m in schema.MESSAGES] + [(0, 0x50), (1, 0x00)]
    decoded = 0
    for _ in range(20000):
        ext, msg_type = rng.choice(keys)
        payload = os.urandom(rng.randrange(0, 120)) if rng.random() < 0.5 else bytes(
            rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        try:
            codec.decode_payload(ext, msg_type, payload)
            decoded += 1
        except errors.CodecError:
            pass
    assert decoded > 0  # some garbage is a valid message; the rest must be typed errors

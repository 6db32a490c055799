"""Strict decoding: every malformed payload is a typed error naming message, field, offset."""

import os
import random

import pytest

from sv2ffi import codec, errors, schema
from sv2ffi.messages import (CoinbaseOutputConstraints, NewTemplate, RequestTransactionDataSuccess,
                             SetNewPrevHash, SetupConnection, SubmitSharesExtended,
                             SubmitSharesStandard, SubmitSolution)

from conftest import load_vectors

VECTORS = [v for v in load_vectors("messages.json")["vectors"] if not v.get("legacy")]
#: byte offset of the TLV part of SubmitSharesExtended vectors (its "layout" says where)
TLV_START = {v["id"]: len("".join(seg for name, seg in v["layout"] if name != "user_identity"))
             // 2 for v in VECTORS if v["type"] == "SubmitSharesExtended"}


def _key(v):
    spec = schema.message_spec(v["type"])
    return spec.extension_type, spec.msg_type


def _cases():
    for v in VECTORS:
        payload = bytes.fromhex(v["payload"])
        for cut in range(len(payload)):
            yield pytest.param(v, cut, id=f"{v['id']}-{cut}")


@pytest.mark.parametrize("v,cut", list(_cases()))
def test_every_truncation_point_is_a_typed_error(v, cut):
    payload = bytes.fromhex(v["payload"])
    key = _key(v)
    if key == (0, 0x70) and cut == 4:
        # the legacy CoinbaseOutputDataSize form is exactly the first 4 bytes
        assert codec.decode_payload(*key, payload[:cut]).coinbase_output_max_additional_sigops == 400
        return
    if v["type"] == "SubmitSharesExtended" and cut == TLV_START[v["id"]]:
        # everything before the optional TLV field is a whole message without it
        assert codec.decode_payload(*key, payload[:cut]).user_identity is None
        return
    with pytest.raises(errors.TruncatedError) as e:
        codec.decode_payload(*key, payload[:cut])
    assert e.value.message == v["type"]
    # a cut inside a TLV header leaves no way to tell which field it was
    assert e.value.field is not None or "truncated TLV header" in str(e.value)
    assert e.value.offset is not None and e.value.offset <= cut
    assert v["type"] in str(e.value) and "byte" in str(e.value)


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["id"])
def test_trailing_bytes_are_refused(v):
    payload = bytes.fromhex(v["payload"]) + b"\x00"
    if v["type"] == "SubmitSharesExtended":  # what follows the last field is read as TLVs
        with pytest.raises(errors.TruncatedError, match="truncated TLV header") as e:
            codec.decode_payload(*_key(v), payload)
    else:
        with pytest.raises(errors.TrailingBytesError) as e:
            codec.decode_payload(*_key(v), payload)
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
    keys = [(m.extension_type, m.msg_type) for m in schema.MESSAGES] + [(0, 0x99), (1, 0x09),
                                                                         (2, 0x00)]
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


def _shares(tail: bytes) -> bytes:
    base = codec.encode_payload(SubmitSharesExtended(1, 2, 3, 4, 5, 6, b"\x07"))
    return base + tail


def test_tlv_value_above_its_maximum_is_refused():
    """Spec 3.4.3: a TLV longer than its extension allows is rejected (user_identity: 32)."""
    base_len = len(_shares(b""))
    with pytest.raises(errors.LengthExceedsMaxError) as e:
        codec.decode_payload(0, 0x1B, _shares(bytes.fromhex("020001" "2100") + b"x" * 33))
    assert (e.value.message, e.value.field, e.value.offset) == ("SubmitSharesExtended",
                                                                "user_identity", base_len + 3)
    with pytest.raises(errors.EncodeError) as e:
        codec.encode_payload(SubmitSharesExtended(1, 2, 3, 4, 5, 6, b"", "x" * 33))
    assert e.value.field == "user_identity"


def test_tlv_twice_and_truncated_tlvs_are_typed_errors():
    one = bytes.fromhex("020001" "0100") + b"w"
    with pytest.raises(errors.DecodeError, match="appears twice"):
        codec.decode_payload(0, 0x1B, _shares(one + one))
    with pytest.raises(errors.TruncatedError, match="truncated TLV 0x0009/0x01: length 4, 2"):
        codec.decode_payload(0, 0x1B, _shares(bytes.fromhex("090001" "0400") + b"ab"))
    with pytest.raises(errors.TruncatedError, match="truncated TLV_STR0_32: length 4, 2"):
        codec.decode_payload(0, 0x1B, _shares(bytes.fromhex("020001" "0400") + b"ab"))
    # an unknown TLV of length 0 is skipped like any other
    assert codec.decode_payload(0, 0x1B, _shares(bytes.fromhex("030007" "0000") + one)) \
        == SubmitSharesExtended(1, 2, 3, 4, 5, 6, b"\x07", "w")


def test_messages_without_tlv_fields_still_refuse_trailing_bytes():
    payload = codec.encode_payload(SubmitSharesStandard(1, 2, 3, 4, 5, 6))
    with pytest.raises(errors.TrailingBytesError):
        codec.decode_payload(0, 0x1A, payload + bytes.fromhex("020001" "0000"))

"""Byte-exact conformance with tests/vectors/messages.json: every message of the schema,
each vector naming where its values and bytes come from (sv2-tp and SRI tests, SRI's
message-generator fixtures, the sv2-spec's examples and tables)."""

import pytest

from sv2ffi import codec, framing, jsonform, schema
from sv2ffi.messages import CoinbaseOutputConstraints

from conftest import load_vectors

DATA = load_vectors("messages.json")
VECTORS = DATA["vectors"]
MODERN = [v for v in VECTORS if not v.get("legacy")]


def _message(v):
    return jsonform.message_from_json({"type": v["type"], "fields": v["fields"]})


@pytest.mark.parametrize("v", MODERN, ids=lambda v: v["id"])
def test_encode_matches_vector(v):
    assert codec.encode_payload(_message(v)).hex() == v["payload"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["id"])
def test_decode_matches_vector(v):
    msg = _message(v)
    got = codec.decode_payload(msg.SPEC.extension_type, msg.SPEC.msg_type,
                               bytes.fromhex(v["payload"]))
    assert got == msg
    assert jsonform.message_to_json(got)["fields"] == v["fields"]


@pytest.mark.parametrize("v", [v for v in MODERN if "header" in v], ids=lambda v: v["id"])
def test_whole_frame_matches_vector(v):
    frame = framing.encode_message(_message(v))
    assert frame.hex() == v["header"] + v["payload"]


def test_every_vector_names_its_source_and_every_message_has_one():
    assert all(v.get("source") for v in VECTORS)
    assert {v["type"] for v in VECTORS} == {m.name for m in schema.MESSAGES}
    assert len({v["id"] for v in VECTORS}) == len(VECTORS)


@pytest.mark.parametrize("v", [v for v in VECTORS if "layout" in v], ids=lambda v: v["id"])
def test_layout_is_the_payload_field_by_field(v):
    """A hand-laid-out vector lists one byte segment per field, in the spec table's order;
    they add up to the payload, and each field's bytes are the codec's for that value."""
    spec = schema.message_spec(v["type"])
    assert [name for name, _ in v["layout"]] == [f.name for f in spec.fields]
    assert "".join(seg for _, seg in v["layout"]) == v["payload"]
    msg = _message(v)
    for f, (_, seg) in zip(spec.fields, v["layout"]):
        if f.type.tlv is None:
            assert codec.encode_value(f.type, getattr(msg, f.name)).hex() == seg, f.name


@pytest.mark.parametrize("h", DATA["headers"], ids=lambda h: h["id"])
def test_header_vectors(h):
    raw = bytes.fromhex(h["bytes"])
    assert framing.decode_header(raw) == (h["extension_type"], h["channel_msg"], h["msg_type"],
                                          h["length"])
    assert framing.encode_header(h["extension_type"], h["channel_msg"], h["msg_type"],
                                 h["length"]) == raw


def test_legacy_coinbase_output_data_size_defaults_sigops():
    msg = codec.decode_payload(0, 0x70, bytes.fromhex("e8030000"))
    assert msg == CoinbaseOutputConstraints(1000, 400)
    # re-encoding always uses the current 6-byte form
    assert codec.encode_payload(msg).hex() == "e80300009001"


def test_new_template_payload_size_formula():
    v = next(v for v in VECTORS if v["id"] == "e-new-template-multiple-outputs")
    msg = _message(v)
    p, o, n = len(msg.coinbase_prefix), len(msg.coinbase_tx_outputs), len(msg.merkle_path)
    assert len(codec.encode_payload(msg)) == 41 + p + o + 32 * n == 110

"""The schema is the single source of truth; these tests pin its shape."""

import dataclasses

import pytest

from sv2ffi import codec, messages, schema


def test_every_primitive_type_is_defined():
    names = {t.name for t in schema.PRIMITIVES}
    assert names == {"U8", "U16", "U24", "U32", "U64", "U256", "BOOL", "F32", "STR0_255",
                     "B0_32", "B0_255", "B0_64K", "B0_16M", "PUBKEY", "SIGNATURE"}
    assert schema.OPTION(schema.U8).max_len == 1
    assert schema.SEQ0_255(schema.U256).max_len == 255
    assert schema.SEQ0_64K(schema.B0_16M).len_size == 2


def test_message_table_ids():
    table = {(m.name, m.msg_type, m.channel_msg) for m in schema.MESSAGES}
    assert table == {
        ("SetupConnection", 0x00, False), ("SetupConnection.Success", 0x01, False),
        ("SetupConnection.Error", 0x02, False), ("ChannelEndpointChanged", 0x03, True),
        ("Reconnect", 0x04, False), ("CoinbaseOutputConstraints", 0x70, False),
        ("NewTemplate", 0x71, False), ("SetNewPrevHash", 0x72, False),
        ("RequestTransactionData", 0x73, False), ("RequestTransactionData.Success", 0x74, False),
        ("RequestTransactionData.Error", 0x75, False), ("SubmitSolution", 0x76, False),
    }


@pytest.mark.parametrize("spec", schema.MESSAGES, ids=lambda m: m.name)
def test_classes_are_derived_from_the_schema(spec):
    cls = messages.message_class(spec.name)
    assert cls is getattr(messages, spec.class_name)
    assert cls.SPEC is spec
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in spec.fields]
    assert messages.BY_KEY[(0, spec.msg_type)] is cls
    assert spec.doc, "every message carries a one-line doc"


def test_name_forms():
    spec = schema.message_spec("RequestTransactionData.Success")
    assert spec.class_name == "RequestTransactionDataSuccess"
    assert spec.snake_name == "request_transaction_data_success"
    assert spec.const_name == "REQUEST_TRANSACTION_DATA_SUCCESS"
    assert schema.message_spec("SetupConnectionError").msg_type == 2
    with pytest.raises(KeyError):
        schema.message_spec("NoSuchMessage")


def test_fixed_sizes_match_the_spec():
    # payload sizes from the spec's TDP table (section 4): computed from the schema
    def min_size(spec):
        return len(codec.encode_payload(messages.message_class(spec.name)(**{
            f.name: _empty(f.type) for f in spec.fields})))

    sizes = {m.name: min_size(m) for m in schema.MESSAGES}
    assert sizes["SetNewPrevHash"] == 80
    assert sizes["RequestTransactionData"] == 8
    assert sizes["CoinbaseOutputConstraints"] == 6
    assert sizes["SetupConnection"] == 16
    assert sizes["SetupConnection.Success"] == 6
    assert sizes["NewTemplate"] == 41
    assert sizes["SubmitSolution"] == 22
    assert sizes["RequestTransactionData.Success"] == 12


def _empty(t):
    if t.kind in ("int",):
        return 0
    if t.kind == "bool":
        return False
    if t.kind == "f32":
        return 0.0
    if t.kind == "fixed":
        return bytes(t.size)
    if t.kind == "bytes":
        return "" if t.text else b""
    return None if t.max_len == 1 else []

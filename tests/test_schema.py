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


# sv2-spec 08-Message-Types.md and extensions/0x0001-extensions-negotiation.md section 3
# (commit 0f38d51d), transcribed row by row: (extension_type, msg_type, channel_msg bit, name).
# The spec names the Mining Protocol's 0x20 SetNewPrevHash like the TDP's 0x72; the schema
# calls it MiningSetNewPrevHash (SRI: MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH). 0x1e is
# "Reserved" and has no row.
SPEC_MESSAGE_TYPES = """
0 0x00 0 SetupConnection
0 0x01 0 SetupConnection.Success
0 0x02 0 SetupConnection.Error
0 0x03 1 ChannelEndpointChanged
0 0x04 0 Reconnect
0 0x10 0 OpenStandardMiningChannel
0 0x11 0 OpenStandardMiningChannel.Success
0 0x12 0 OpenMiningChannel.Error
0 0x13 0 OpenExtendedMiningChannel
0 0x14 0 OpenExtendedMiningChannel.Success
0 0x15 1 NewMiningJob
0 0x16 1 UpdateChannel
0 0x17 1 UpdateChannel.Error
0 0x18 1 CloseChannel
0 0x19 1 SetExtranoncePrefix
0 0x1a 1 SubmitSharesStandard
0 0x1b 1 SubmitSharesExtended
0 0x1c 1 SubmitShares.Success
0 0x1d 1 SubmitShares.Error
0 0x1f 1 NewExtendedMiningJob
0 0x20 1 MiningSetNewPrevHash
0 0x21 1 SetTarget
0 0x22 1 SetCustomMiningJob
0 0x23 1 SetCustomMiningJob.Success
0 0x24 1 SetCustomMiningJob.Error
0 0x25 0 SetGroupChannel
0 0x50 0 AllocateMiningJobToken
0 0x51 0 AllocateMiningJobToken.Success
0 0x55 0 ProvideMissingTransactions
0 0x56 0 ProvideMissingTransactions.Success
0 0x57 0 DeclareMiningJob
0 0x58 0 DeclareMiningJob.Success
0 0x59 0 DeclareMiningJob.Error
0 0x60 0 PushSolution
0 0x70 0 CoinbaseOutputConstraints
0 0x71 0 NewTemplate
0 0x72 0 SetNewPrevHash
0 0x73 0 RequestTransactionData
0 0x74 0 RequestTransactionData.Success
0 0x75 0 RequestTransactionData.Error
0 0x76 0 SubmitSolution
1 0x00 0 RequestExtensions
1 0x01 0 RequestExtensions.Success
1 0x02 0 RequestExtensions.Error
"""


def test_message_table_ids_and_channel_bits_are_the_specs():
    table = {(m.extension_type, m.msg_type, m.channel_msg, m.name) for m in schema.MESSAGES}
    spec = set()
    for line in SPEC_MESSAGE_TYPES.strip().splitlines():
        ext, msg_type, channel, name = line.split()
        spec.add((int(ext), int(msg_type, 16), channel == "1", name))
    assert table == spec
    assert schema.KNOWN_EXTENSIONS == {0, 1}


def test_extension_messages_are_keyed_by_extension_and_msg_type():
    assert schema.MESSAGES_BY_KEY[(0, 0)].name == "SetupConnection"
    assert schema.MESSAGES_BY_KEY[(1, 0)].name == "RequestExtensions"
    assert messages.BY_KEY[(1, 2)] is messages.RequestExtensionsError


def test_tlv_fields_are_trailing_optional_values():
    spec = schema.message_spec("SubmitSharesExtended")
    last = spec.fields[-1]
    assert last.name == "user_identity" and last.type.tlv == (0x0002, 0x01)
    assert last.type.elem.max_len == 32 and last.type.elem.len_size == 2
    assert messages.SubmitSharesExtended(1, 2, 3, 4, 5, 6, b"").user_identity is None


@pytest.mark.parametrize("spec", schema.MESSAGES, ids=lambda m: m.name)
def test_classes_are_derived_from_the_schema(spec):
    cls = messages.message_class(spec.name)
    assert cls is getattr(messages, spec.class_name)
    assert cls.SPEC is spec
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in spec.fields]
    assert messages.BY_KEY[(spec.extension_type, spec.msg_type)] is cls
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

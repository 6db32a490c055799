"""Byte-exact vectors for the Noise layer: sv2-digest 8.5 (whole handshake and first
transport frames), the BIP324 ECDH rows (8.6 and the rest of the CSV) and BIP324
ElligatorSwift decoding."""

import hashlib

import pytest

from conftest import load_vectors
from sv2ffi import noise
from sv2ffi.connection import Connection, State
from sv2ffi.framing import decode_frame, FrameDecoder
from sv2ffi.keys import (Certificate, EllSwiftKey, Keypair, ellswift_decode_x, ellswift_ecdh)
from sv2ffi.messages import SetupConnectionSuccess

HS = load_vectors("noise_handshake.json")
ECDH = load_vectors("noise_bip324_ecdh.json")["rows"]
DECODE = load_vectors("noise_ellswift_decode.json")["rows"]

h = bytes.fromhex


def vector_keys():
    e_i = EllSwiftKey.from_hex(HS["e_i_priv"], HS["e_i_ell"])
    e_r = EllSwiftKey.from_hex(HS["e_r_priv"], HS["e_r_ell"])
    s_r = EllSwiftKey.from_hex(HS["s_r_priv"], HS["s_r_ell"])
    authority = Keypair(h(HS["authority_priv"]))
    return e_i, e_r, s_r, authority


def vector_certificate(authority):
    return Certificate.issue(authority, h(HS["s_r_xonly"]), HS["cert_valid_from"],
                             HS["cert_not_valid_after"], version=HS["cert_version"],
                             aux=h(HS["cert_aux"]))


def test_initial_chaining_key_and_hash():
    st = noise.SymmetricState()
    assert st.ck.hex() == HS["ck0"]
    assert st.h.hex() == HS["h0"]
    # digest 5.1 says 46 bytes; the name is 45 ASCII bytes (ck0/h0 above prove the bytes)
    assert len(noise.PROTOCOL_NAME) == 45


def test_keys_of_the_vector():
    e_i, e_r, s_r, authority = vector_keys()
    assert s_r.keypair.xonly.hex() == HS["s_r_xonly"]
    assert ellswift_decode_x(s_r.encoding).hex() == HS["s_r_xonly"]
    assert authority.xonly.hex() == HS["authority_xonly"]


def test_certificate_bytes_and_signature():
    _, _, _, authority = vector_keys()
    cert = vector_certificate(authority)
    pre = h(HS["cert_preimage"])
    assert Certificate.signed_hash(0, HS["cert_valid_from"], HS["cert_not_valid_after"],
                                   h(HS["s_r_xonly"])).hex() == HS["cert_hash"]
    assert hashlib.sha256(pre).hexdigest() == HS["cert_hash"]
    assert pre == cert.to_bytes()[:10] + h(HS["s_r_xonly"])
    assert cert.signature.hex() == HS["cert_signature"]
    assert cert.to_bytes().hex() == HS["signature_noise_message"]
    assert Certificate.from_bytes(cert.to_bytes()) == cert
    cert.verify(authority.xonly, h(HS["s_r_xonly"]), now=HS["cert_valid_from"])


def test_handshake_trace_byte_for_byte():
    e_i, e_r, s_r, authority = vector_keys()
    ti, tr = noise.Trace(), noise.Trace()
    ini = noise.InitiatorHandshake(authority.xonly, ephemeral=e_i,
                                   clock=lambda: HS["cert_valid_from"] + 1, trace=ti)
    res = noise.ResponderHandshake(s_r, vector_certificate(authority), ephemeral=e_r, trace=tr)
    act1 = ini.act1()
    assert act1.hex() == HS["message_1"]
    assert ti["h_after_e"].hex() == HS["h_after_e_i"]
    assert ti["h_after_act1"].hex() == HS["h_after_act1"]
    act2, r_send, r_recv = res.read_act1(act1)
    assert tr["h_after_er"].hex() == HS["h_after_e_r"]
    assert tr["ee"].hex() == HS["ee"]
    assert tr["ck_after_ee"].hex() == HS["ck_after_ee"]
    assert tr["c_s"].hex() == HS["enc_s_r"]
    assert tr["h_after_c_s"].hex() == HS["h_after_enc_s_r"]
    assert tr["es"].hex() == HS["es"]
    assert tr["ck_after_es"].hex() == HS["ck_after_es"]
    assert tr["c_cert"].hex() == HS["enc_cert"]
    assert tr["h_final"].hex() == HS["h_final"]
    assert len(act2) == noise.ACT2_SIZE == 234
    assert act2.hex() == HS["message_2"] == HS["e_r_ell"] + HS["enc_s_r"] + HS["enc_cert"]
    i_send, i_recv = ini.read_act2(act2)
    assert ti["k1"].hex() == tr["k1"].hex() == HS["k1"]
    assert ti["k2"].hex() == tr["k2"].hex() == HS["k2"]
    assert ini.state.h.hex() == HS["h_final"]
    assert ini.remote_static_xonly.hex() == HS["s_r_xonly"]


def test_mix_key_keys_match_the_trace():
    """The k after each MixKey, recomputed from the traced chaining keys."""
    ck_after_ee, k_ee = noise.hkdf2(h(HS["ck0"]), h(HS["ee"]))
    assert ck_after_ee.hex() == HS["ck_after_ee"] and k_ee.hex() == HS["k_after_ee"]
    ck_after_es, k_es = noise.hkdf2(ck_after_ee, h(HS["es"]))
    assert ck_after_es.hex() == HS["ck_after_es"] and k_es.hex() == HS["k_after_es"]


def vector_connections():
    e_i, e_r, s_r, authority = vector_keys()
    client = Connection.initiator(authority.xonly, ephemeral=e_i,
                                  clock=lambda: HS["cert_valid_from"] + 100)
    server = Connection.responder(s_r, vector_certificate(authority), ephemeral=e_r)
    return client, server


def test_connections_reproduce_acts_and_first_frames():
    client, server = vector_connections()
    assert server.initiate() == b""
    act1 = client.initiate()
    assert act1.hex() == HS["message_1"]
    assert client.state is State.WAIT_ACT2 and server.state is State.WAIT_ACT1
    assert server.feed(act1) == []
    act2 = server.take_output()
    assert act2.hex() == HS["message_2"]
    assert server.is_established
    assert client.feed(act2) == []
    assert client.is_established

    # client -> server: the SetupConnection of digest 8.2(a)
    frame = h(HS["client_header_plain"] + HS["client_payload_plain"])
    dec = FrameDecoder()
    dec.feed(frame)
    setup = decode_frame(dec.next_frame())
    wire = client.send(setup)
    assert wire.hex() == HS["client_header_ct"] + HS["client_payload_ct"]
    assert server.feed(wire) == [setup]

    # server -> client
    success = SetupConnectionSuccess(used_version=2, flags=0)
    assert HS["server_header_plain"] + HS["server_payload_plain"] == "000001060000020000000000"
    wire = server.send(success)
    assert wire.hex() == HS["server_header_ct"] + HS["server_payload_ct"]
    assert client.feed(wire) == [success]


@pytest.mark.parametrize("row", ECDH, ids=[f"idx{r['in_idx']}" for r in ECDH])
def test_bip324_ecdh_rows(row):
    """Every packet_encoding row; 'initiating' = we are party A = the SV2 initiator."""
    ours, theirs = h(row["in_ellswift_ours"]), h(row["in_ellswift_theirs"])
    priv = h(row["in_priv_ours"])
    initiating = row["in_initiating"] == "1"
    ell_a, ell_b = (ours, theirs) if initiating else (theirs, ours)
    assert ellswift_ecdh(ell_a, ell_b, priv, initiating).hex() == row["mid_shared_secret"]
    assert ellswift_decode_x(ours).hex() == row["mid_x_ours"]
    assert ellswift_decode_x(theirs).hex() == row["mid_x_theirs"]
    assert Keypair(priv).xonly.hex() == row["mid_x_ours"]
    # the swapped role gives another secret: party A/B is not symmetric
    assert ellswift_ecdh(ell_b, ell_a, priv, not initiating).hex() != row["mid_shared_secret"]


def test_digest_8_6_row_is_in_the_csv():
    row = next(r for r in ECDH if r["in_idx"] == "1")
    assert row["mid_shared_secret"] == \
        "c6992a117f5edbea70c3f511d32d26b9798be4b81a62eaee1a5acaa8459a3592"
    assert row["mid_x_shared"] == "4eb2bf85bd00939468ea2abb25b63bc642e3d1eb8b967fb90caa2d89e716050e"
    assert len(ECDH) == 7


def test_ellswift_decode_is_total():
    """All 76 BIP324 decode rows, incl. u/t = 0 and >= p: nothing is refused."""
    assert len(DECODE) == 76
    for row in DECODE:
        assert ellswift_decode_x(h(row["ellswift"])).hex() == row["x"], row["comment"]

"""Keys: digest 8.1 text-form vectors incl. the bad keys, key files, certificates."""

import os
import stat
import subprocess
import sys

import pytest

from conftest import load_vectors
from noise_support import AUTHORITY, OTHER_AUTHORITY, STATIC
from sv2ffi import base58, errors, keys
from sv2ffi.keys import Certificate, EllSwiftKey, Keypair

KEYS = load_vectors("noise_keys.json")
PAIRS = KEYS["pairs"]
h = bytes.fromhex


@pytest.mark.parametrize("pair", PAIRS, ids=[p["name"] for p in PAIRS])
def test_authority_pubkey_text_vectors(pair):
    assert keys.encode_authority_pubkey(h(pair["xonly"])) == pair["public"]
    assert keys.decode_authority_pubkey(pair["public"]).hex() == pair["xonly"]
    assert len(pair["public"]) == 51 and pair["public"][:2] in ("9a", "9b", "9c")


@pytest.mark.parametrize("pair", [p for p in PAIRS if "secret" in p],
                         ids=lambda p: p["name"])
def test_secret_key_text_vectors(pair):
    secret = keys.decode_secret_key(pair["secret"])
    assert secret.hex() == pair["secret_hex"]
    assert keys.encode_secret_key(secret) == pair["secret"]
    assert Keypair(secret).xonly.hex() == pair["xonly"]


@pytest.mark.parametrize("bad", KEYS["bad_public"], ids=lambda b: b["error"])
def test_bad_authority_keys(bad):
    with pytest.raises(getattr(errors, bad["error"])) as e:
        keys.decode_authority_pubkey(bad["text"])
    assert isinstance(e.value, errors.KeyFormatError)
    assert e.value.status == "SV2_ERR_INVALID_ARGUMENT"


def test_more_bad_text():
    with pytest.raises(errors.KeyFormatError):
        keys.decode_authority_pubkey("9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCna0")  # '0'
    with pytest.raises(errors.KeyLengthError):
        keys.decode_secret_key(PAIRS[0]["public"])  # 34-byte payload is not a secret key
    with pytest.raises(errors.KeyLengthError):
        keys.decode_authority_pubkey(base58.b58check_encode(b""))
    with pytest.raises(errors.InvalidKeyError):  # 0 is not a secret key
        keys.decode_secret_key(base58.b58check_encode(bytes(32)))
    with pytest.raises(errors.KeyChecksumError):
        keys.decode_secret_key("1111")


def test_base58_leading_zeros_round_trip():
    for data in (b"", b"\0", b"\0\0\1", bytes(5) + b"\xff" * 3):
        assert base58.b58decode(base58.b58encode(data)) == data


def test_keypair_validation_and_generation():
    n = int("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
    for bad in (bytes(32), n.to_bytes(32, "big"), b"\xff" * 32):
        with pytest.raises(errors.InvalidKeyError):
            Keypair(bad)
    with pytest.raises(errors.KeyLengthError):
        Keypair(bytes(31))
    draws = iter([bytes(32), b"\xff" * 32, bytes(31) + b"\x05"])
    assert Keypair.generate(lambda n: next(draws)).secret == bytes(31) + b"\x05"
    assert "secret" not in repr(AUTHORITY) and AUTHORITY.secret.hex() not in repr(AUTHORITY)


def test_ellswift_key_must_match_its_secret():
    enc = STATIC.ellswift(bytes(32))
    EllSwiftKey(STATIC, enc)
    with pytest.raises(errors.InvalidEllSwiftError):
        EllSwiftKey(AUTHORITY, enc)
    with pytest.raises(errors.InvalidEllSwiftError):
        EllSwiftKey(STATIC, enc[:63])
    assert STATIC.ellswift(bytes(32)) != STATIC.ellswift(b"\1" * 32)  # randomized


# ---- certificates --------------------------------------------------------------------

NOW = 1_700_000_000


def cert(valid_from=NOW - 100, not_valid_after=NOW + 100, authority=AUTHORITY, version=0):
    return Certificate.issue(authority, STATIC.xonly, valid_from, not_valid_after,
                             version=version)


def test_certificate_round_trip_and_verify():
    c = cert()
    assert len(c.to_bytes()) == 74
    assert Certificate.from_bytes(c.to_bytes()) == c
    c.verify(AUTHORITY.xonly, STATIC.xonly, NOW)
    with pytest.raises(errors.CertificateError):
        Certificate.from_bytes(c.to_bytes()[:73])


@pytest.mark.parametrize("now,leeway,error", [
    (NOW + 100, 10, None), (NOW + 110, 10, None), (NOW + 110.5, 10, "CertificateExpiredError"),
    (NOW + 101, 0, "CertificateExpiredError"), (NOW - 110, 10, None),
    (NOW - 111, 10, "CertificateNotYetValidError"), (NOW - 101, 0, "CertificateNotYetValidError"),
    (NOW - 101, 60, None)])
def test_validity_window_with_leeway(now, leeway, error):
    c = cert()
    if error is None:
        c.verify(AUTHORITY.xonly, STATIC.xonly, now, leeway)
    else:
        with pytest.raises(getattr(errors, error)):
            c.verify(AUTHORITY.xonly, STATIC.xonly, now, leeway)


def test_wrong_signer_tampered_fields_and_other_static_key():
    with pytest.raises(errors.CertificateWrongSignerError):
        cert(authority=OTHER_AUTHORITY).verify(AUTHORITY.xonly, STATIC.xonly, NOW)
    c = cert()
    with pytest.raises(errors.CertificateWrongSignerError):
        Certificate(0, c.valid_from - 1, c.not_valid_after, c.signature).verify(
            AUTHORITY.xonly, STATIC.xonly, NOW)
    with pytest.raises(errors.CertificateWrongSignerError):
        c.verify(AUTHORITY.xonly, AUTHORITY.xonly, NOW)  # signed for another static key
    cert(authority=OTHER_AUTHORITY).verify(None, STATIC.xonly, NOW)  # no key: no signature check


def test_unknown_version_refused():
    with pytest.raises(errors.CertificateVersionError):
        cert(version=1).verify(AUTHORITY.xonly, STATIC.xonly, NOW)


def test_issue_refuses_out_of_range_times():
    with pytest.raises(errors.CertificateError):
        cert(not_valid_after=1 << 32)


# ---- files ---------------------------------------------------------------------------


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_file_round_trip_mode_0600(tmp_path):
    p = tmp_path / "k"
    keys.write_key_file(p, STATIC)
    assert mode(p) == 0o600
    assert keys.read_key_file(p) == STATIC
    p.write_text("garbage\n")
    with pytest.raises(errors.KeyFormatError) as e:
        keys.read_key_file(p)
    assert str(p) in str(e.value)


def test_datadir_keys(tmp_path):
    made = keys.generate_datadir_keys(tmp_path / "d")
    for name in (keys.AUTHORITY_KEY_FILE, keys.STATIC_KEY_FILE, keys.AUTHORITY_PUBKEY_FILE):
        assert mode(tmp_path / "d" / name) == 0o600
    with pytest.raises(FileExistsError):
        keys.generate_datadir_keys(tmp_path / "d")
    loaded = keys.load_datadir_keys(tmp_path / "d")
    assert loaded == made
    assert (tmp_path / "d" / keys.AUTHORITY_PUBKEY_FILE).read_text().strip() == \
        made.authority_pubkey_text


def test_cli_keygen(tmp_path):
    d = tmp_path / "data"
    run = subprocess.run([sys.executable, "-m", "sv2ffi", "keygen", "--datadir", str(d)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    printed = run.stdout.strip().splitlines()[-1]
    loaded = keys.load_datadir_keys(d, create=False)
    assert printed == keys.encode_authority_pubkey(loaded.authority.xonly)
    assert mode(d / keys.STATIC_KEY_FILE) == 0o600
    again = subprocess.run([sys.executable, "-m", "sv2ffi", "keygen", "--datadir", str(d)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr
    assert keys.load_datadir_keys(d, create=False) == loaded  # not overwritten

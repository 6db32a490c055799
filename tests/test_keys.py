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


def keygen(*argv):
    return subprocess.run([sys.executable, "-m", "sv2ffi", "keygen", *argv],
                          capture_output=True, text=True, timeout=60)


def test_cli_keygen(tmp_path):
    """Keys go where `sv2ffi tp --datadir D --chain C` reads them: D/<chain>/."""
    run = keygen("--datadir", str(tmp_path), "--chain", "signet")
    assert run.returncode == 0, run.stderr
    d = tmp_path / "signet"
    printed = run.stdout.strip().splitlines()[-1]
    loaded = keys.load_datadir_keys(d, create=False)
    assert printed == keys.encode_authority_pubkey(loaded.authority.xonly)
    assert mode(d / keys.STATIC_KEY_FILE) == 0o600
    assert str(d) in run.stderr
    again = keygen("--datadir", str(tmp_path), "--chain", "signet")
    assert again.returncode == 2 and "exists" in again.stderr
    assert keys.load_datadir_keys(d, create=False) == loaded  # not overwritten


def test_new_authority_key_is_logged_at_warning_with_its_public_key(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="sv2ffi.keys"):
        made = keys.load_datadir_keys(tmp_path / "k")
    assert any(r.levelname == "WARNING" and made.authority_pubkey_text in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="sv2ffi.keys"):
        assert keys.load_datadir_keys(tmp_path / "k") == made  # existing keys: no warning
    assert not caplog.records


# sv2-tp's key files (stratum-mining/sv2-tp src/sv2/template_provider.cpp writes
# `AutoFile << CKey` to <datadir>/<net>/sv2_authority_key and sv2_static_key; src/key.h
# CKey::Serialize writes the compressed flag, then the 32 secret bytes, no length prefix).
SV2TP_AUTHORITY = bytes(range(1, 33))
SV2TP_STATIC = bytes(range(101, 133))


def write_sv2tp_files(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "sv2_authority_key").write_bytes(b"\x01" + SV2TP_AUTHORITY)
    (d / "sv2_static_key").write_bytes(b"\x01" + SV2TP_STATIC)
    return keys.encode_authority_pubkey(keys.Keypair(SV2TP_AUTHORITY).xonly)


def test_import_sv2tp_directory_keeps_both_keys(tmp_path):
    pinned = write_sv2tp_files(tmp_path / "bitcoin" / "signet")
    run = keygen("--datadir", str(tmp_path), "--chain", "signet", "--import-sv2tp",
                 str(tmp_path / "bitcoin" / "signet"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == pinned  # the key pools pinned, unchanged
    loaded = keys.load_datadir_keys(tmp_path / "signet", create=False)
    assert loaded.authority.secret == SV2TP_AUTHORITY and loaded.static.secret == SV2TP_STATIC
    for name in (keys.AUTHORITY_KEY_FILE, keys.STATIC_KEY_FILE, keys.AUTHORITY_PUBKEY_FILE):
        assert mode(tmp_path / "signet" / name) == 0o600


def test_import_sv2tp_authority_file_alone(tmp_path):
    src = tmp_path / "copy"
    src.mkdir()
    (src / "auth.bin").write_bytes(b"\x01" + SV2TP_AUTHORITY)
    made = keys.import_sv2tp_keys(src / "auth.bin", tmp_path / "out")
    assert made.authority.secret == SV2TP_AUTHORITY
    assert made.static.secret != SV2TP_AUTHORITY  # a fresh static key
    with pytest.raises(FileExistsError):
        keys.import_sv2tp_keys(src / "auth.bin", tmp_path / "out")


@pytest.mark.parametrize("raw, words", [
    (b"\x01" + bytes(31), "expected 33 bytes"),
    (b"\x07" + SV2TP_AUTHORITY, "0x07"),
    (b"\x01" + bytes(32), "0 or not below the curve order"),
    (b"mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n\n", "not an sv2-tp key file"),
])
def test_import_sv2tp_refuses_what_is_not_an_sv2tp_key(tmp_path, raw, words):
    (tmp_path / "k").write_bytes(raw)
    run = keygen("--datadir", str(tmp_path), "--import-sv2tp", str(tmp_path / "k"))
    assert run.returncode == 2 and words in run.stderr, run.stderr
    assert not (tmp_path / "regtest" / keys.AUTHORITY_KEY_FILE).exists()


def test_sv2tp_files_copied_into_the_datadir_are_recognised(tmp_path):
    """Starting on sv2-tp's binary files says how to convert them; nothing is replaced."""
    write_sv2tp_files(tmp_path / "regtest")
    with pytest.raises(errors.KeyFormatError, match="--import-sv2tp"):
        keys.load_datadir_keys(tmp_path / "regtest")
    run = subprocess.run([sys.executable, "-m", "sv2ffi", "tp", "--datadir", str(tmp_path),
                          "--sv2-port", "0"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "sv2ffi keygen --import-sv2tp" in run.stderr, run.stderr
    assert (tmp_path / "regtest" / "sv2_authority_key").read_bytes()[1:] == SV2TP_AUTHORITY

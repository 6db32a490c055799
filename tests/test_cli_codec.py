"""`sv2ffi decode` / `sv2ffi encode` as an operator (or another program) runs them."""

import json
import os
import subprocess
import sys

import pytest

from sv2ffi import schema

from conftest import load_vectors

VECTORS = [v for v in load_vectors("messages.json")["vectors"] if not v.get("legacy")]


def _sv2ffi(*args, stdin=b""):
    exe = os.path.join(os.path.dirname(sys.executable), "sv2ffi")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "sv2ffi"]
    return subprocess.run(cmd + list(args), input=stdin, capture_output=True, timeout=60)


def _frame_hex(v):
    from sv2ffi import framing, jsonform
    return framing.encode_message(jsonform.message_from_json(v)).hex()


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["id"])
def test_decode_then_encode_is_exact(v):
    wire = _frame_hex(v)
    out = _sv2ffi("decode", wire)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert obj["type"] == v["type"]
    assert obj["fields"] == v["fields"]
    assert obj["extension_type"] == schema.message_spec(v["type"]).extension_type
    back = _sv2ffi("encode", stdin=out.stdout)
    assert back.returncode == 0, back.stderr
    assert back.stdout.decode().strip() == wire


def test_many_frames_on_stdin_binary_and_hex():
    wires = [bytes.fromhex(_frame_hex(v)) for v in VECTORS]
    for stdin in (b"".join(wires), b"\n".join(w.hex().encode() for w in wires)):
        out = _sv2ffi("decode", stdin=stdin)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.decode().splitlines()
        assert [json.loads(x)["type"] for x in lines] == [v["type"] for v in VECTORS]
        back = _sv2ffi("encode", stdin=out.stdout)
        assert back.stdout.decode().split() == [w.hex() for w in wires]


def test_encode_accepts_a_list_and_class_names():
    objs = [{"type": "RequestTransactionData", "fields": {"template_id": 5}},
            {"type": "SetupConnectionSuccess", "fields": {"used_version": 2, "flags": 0}}]
    out = _sv2ffi("encode", json.dumps(objs))
    assert out.returncode == 0
    assert out.stdout.decode().split() == ["00007308000005000000" + "00000000",
                                           "000001060000020000000000"]


@pytest.mark.parametrize("args,stdin,needle", [
    (("decode", "zz"), b"", "hex"),
    (("decode", "0000730800000500"), b"", "incomplete frame"),
    (("decode", "000073090000050000000000000000"), b"", "trailing"),
    (("decode", "000099000000"), b"", "unknown message type 0x99"),
    (("decode",), b"", "no input"),
    (("encode", "{"), b"", "invalid JSON"),
    (("encode", '{"type": "Nope"}'), b"", "unknown message type"),
    (("encode", '{"type": "RequestTransactionData", "fields": {}}'), b"", "missing field"),
    (("encode", '{"type": "RequestTransactionData", "fields": {"template_id": -1}}'), b"",
     "template_id"),
    (("encode", '{"type": "SetNewPrevHash", "fields": {"template_id": 1, "prev_hash": "00",'
      ' "header_timestamp": 0, "n_bits": 0, "target": "00"}}'), b"", "32 bytes"),
])
def test_bad_input_is_one_line_and_exit_2(args, stdin, needle):
    out = _sv2ffi(*args, stdin=stdin)
    assert out.returncode == 2
    err = out.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert needle in err
    assert out.stdout == b""

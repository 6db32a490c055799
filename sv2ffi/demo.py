"""``sv2ffi demo``: what README's first command runs.

Until the template provider lands this shows the codec end to end on a sample
template: build the messages a TP sends, frame them, feed the bytes back one at a time
through the streaming decoder and check that every field survives.
"""

from __future__ import annotations

import json
from typing import TextIO

from .framing import MessageDecoder, encode_message
from .jsonform import message_to_json
from .messages import NewTemplate, SetNewPrevHash, SetupConnection


def sample_messages() -> list:
    """The opening of a template-distribution session, with realistic values."""
    commitment = bytes.fromhex("6a24aa21a9ed") + bytes.fromhex(
        "e2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9")
    output = (0).to_bytes(8, "little") + bytes((len(commitment),)) + commitment
    return [
        SetupConnection(protocol=2, min_version=2, max_version=2, flags=0,
                        endpoint_host="127.0.0.1", endpoint_port=18447, vendor="sv2ffi",
                        hardware_version="", firmware="demo", device_id=""),
        NewTemplate(template_id=1, future_template=True, version=0x20000000,
                    coinbase_tx_version=2, coinbase_prefix=bytes.fromhex("0165"),
                    coinbase_tx_input_sequence=0xFFFFFFFE,
                    coinbase_tx_value_remaining=5_000_000_000, coinbase_tx_outputs_count=1,
                    coinbase_tx_outputs=output, coinbase_tx_locktime=100, merkle_path=[]),
        SetNewPrevHash(template_id=1, prev_hash=bytes(range(32)), header_timestamp=1_700_000_000,
                       n_bits=0x207FFFFF,
                       target=(0x7FFFFF << (8 * (0x20 - 3))).to_bytes(32, "little")),
    ]


def run_codec_demo(out: TextIO) -> int:
    msgs = sample_messages()
    wire = b"".join(encode_message(m) for m in msgs)
    print(f"encoded {len(msgs)} messages into {len(wire)} bytes of SV2 frames", file=out)
    dec = MessageDecoder()
    got = []
    for i in range(len(wire)):  # one byte at a time: the decoder must reassemble frames
        dec.feed(wire[i:i + 1])
        while (m := dec.next_message()) is not None:
            got.append(m)
    for m in got:
        print(json.dumps(message_to_json(m)), file=out)
    ok = got == msgs
    print("round trip: " + ("exact" if ok else "MISMATCH"), file=out)
    return 0 if ok else 1

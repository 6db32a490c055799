"""README's first command: `sv2ffi demo` mines blocks through SV2 and exits 0."""

import subprocess
import sys


def test_demo_runs_end_to_end():
    out = subprocess.run([sys.executable, "-m", "sv2ffi", "demo"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.rstrip().endswith("demo: OK")
    for needle in ("Noise handshake done", "SetNewPrevHash", "NewTemplate", "(future)",
                   "RequestTransactionData", "SubmitSolution", "fee-driven update",
                   "3 blocks mined through Stratum V2", "built before this block existed",
                   "accepted by Bitcoin Core", "Bitcoin Core's validation (libbitcoinkernel)"):
        assert needle in text, needle

"""docs/operator-guide.md against reality: the block-resubmit command works for a
mainnet-size block, the SRI configuration is in sv2-apps' current form (its
stratum-apps/src/tp_type.rs: `TemplateProviderType::Sv2Tp { address, public_key }`), and
the flag table lists exactly the flags `sv2ffi tp` has, with sv2-tp names it accepts."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from sv2ffi import cli
from sv2ffi.tp.options import SV2TP_NAMES

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "operator-guide.md").read_text()


def fenced(lang: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"```{lang}\n(.*?)```", GUIDE, re.S)]


def test_resubmit_command_handles_a_mainnet_size_block(tmp_path):
    """3.9 MB of block is 7.8 MB of hex: far beyond one argument's limit (128 KiB on
    Linux), so `$(xxd ...)` would fail; bitcoin-cli -stdin reads it from stdin."""
    cmd = next(line.strip() for block in fenced("sh") for line in block.splitlines()
               if "submitblock" in line)
    assert "-stdin" in cmd and "$(" not in cmd
    block = os.urandom(3_900_000)
    (tmp_path / "blk").write_bytes(block)
    stub = tmp_path / "bin" / "bitcoin-cli"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\ncat > {tmp_path}/stdin\n")
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{stub.parent}:{os.environ['PATH']}")
    proc = subprocess.run(cmd.replace("<file>", str(tmp_path / "blk")), shell=True, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "args").read_text().split() == ["-stdin", "submitblock"]
    lines = (tmp_path / "stdin").read_text().splitlines()
    assert lines == [block.hex()]  # one argument, the whole block


def test_sri_config_is_sv2_apps_current_form_and_the_old_one_is_labelled():
    blocks = fenced("toml")
    current = tomllib.loads(next(b for b in blocks if "template_provider_type" in b))
    tp = current["template_provider_type"]["Sv2Tp"]
    assert set(tp) == {"address", "public_key"}
    assert re.fullmatch(r"[\d.]+:\d+", tp["address"])
    old = next(b for b in blocks if "tp_address" in b)
    assert set(tomllib.loads(old)) == {"tp_address", "tp_authority_public_key"}
    before = GUIDE[:GUIDE.index(old)].rsplit("\n\n", 2)[-2]
    assert "Older SRI releases" in before


def test_flag_table_matches_the_parser():
    parser = cli.build_parser()._subparsers._group_actions[0].choices["tp"]
    ours = {o for a in parser._actions for o in a.option_strings
            if o.startswith("--") and o != "--help"}
    table = GUIDE.split("### Flags, and their sv2-tp names", 1)[1].split("\n\n")
    rows = [ln for chunk in table for ln in chunk.splitlines() if ln.startswith("| `--")]
    documented = {re.match(r"\| `(--[\w-]+)", r).group(1) for r in rows}
    hidden = {"--mempool-interval", "--regtest-rpc-port", "--regtest-zmq-hashblock"}
    assert documented == ours - hidden
    for row in rows:
        for name in re.findall(r"`-(\w+)`", row.split("|")[2]):
            assert name in SV2TP_NAMES or name == "ipcconnect", name


@pytest.mark.parametrize("path", ["README.md", "docs/operator-guide.md"])
def test_no_doc_passes_a_password_on_the_command_line(path):
    text = (ROOT / path).read_text()
    assert not re.search(r"--rpc-password [\"$]", text)

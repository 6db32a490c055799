"""The Python API a newcomer finds first: ``sv2ffi.decode`` / ``sv2ffi.encode``, the
``sv2ffi.tp`` façade (README's snippet, run as written), ``py.typed``, and ``TpService``
refusing a bad configuration when it is built rather than later."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import sv2ffi
from sv2ffi import errors
from sv2ffi.messages import RequestTransactionData, SetupConnectionError
from sv2ffi.tp import run
from sv2ffi.tp.core import TpConfig
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.regtest import RegtestSource

ROOT = Path(__file__).resolve().parents[1]


def test_decode_and_encode_at_the_top_level(message_vectors):
    msgs = [SetupConnectionError(flags=0, error_code="protocol-version-mismatch"),
            RequestTransactionData(template_id=7)]
    data = b"".join(sv2ffi.encode(m) for m in msgs)
    assert data[:6].hex() == "0000021e0000"  # the README's frame header
    assert sv2ffi.decode(data) == msgs
    assert sv2ffi.decode(b"") == []
    with pytest.raises(errors.FramingError, match="incomplete frame"):
        sv2ffi.decode(data[:-1])
    with pytest.raises(errors.Sv2Error):
        sv2ffi.decode(bytes.fromhex("0000ee000000"))  # unknown message type
    with pytest.raises(TypeError):
        sv2ffi.decode("00")
    with pytest.raises(TypeError):
        sv2ffi.encode(b"\x00")
    assert all(isinstance(m, sv2ffi.Message) for m in sv2ffi.decode(data))


def readme_python_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_snippet_runs_as_written(tmp_path):
    proc = subprocess.run([sys.executable, "-c", readme_python_snippet()], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"listening on port \d+ authority key 9\w+", proc.stdout)
    assert "mining on template" in proc.stdout
    assert "solutions: {('accepted', ''): 1}" in proc.stdout


def test_package_is_typed():
    assert (Path(sv2ffi.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize("kw, words", [
    (dict(port=70000), "port must be <= 65535"),
    (dict(port=-1), "port must be >= 0"),
    (dict(host=""), "host must be an address"),
    (dict(datadir=None), "datadir is needed"),
    (dict(config=TpConfig(fee_delta=-1)), "config.fee_delta must be >= 0"),
    (dict(config=TpConfig(template_interval=float("nan"))), "config.template_interval"),
    (dict(config=TpConfig(max_clients=0)), "config.max_clients must be >= 1"),
    (dict(config=TpConfig(network="main")), "bitcoin.Network"),
    (dict(config=TpConfig(block_max_weight=5_000_000)), "block_max_weight must be <="),
    (dict(tick_interval=0), "tick_interval must be > 0"),
    (dict(max_pending=0), "max_pending must be >= 1"),
    (dict(write_timeout=0), "write_timeout must be > 0"),
    (dict(keys="9b..."), "keys must be DatadirKeys"),
])
def test_tp_service_misconfiguration_is_caught_at_construction(tmp_path, kw, words):
    args = dict(datadir=tmp_path)
    args.update(kw)
    with pytest.raises(ValueError, match=re.escape(words)):
        TpService(RegtestSource(mempool_interval=0), **args)


def test_tp_service_refuses_a_datadir_under_a_missing_parent(tmp_path):
    with pytest.raises(ValueError, match="parent directory .* does not exist"):
        TpService(RegtestSource(mempool_interval=0), datadir=tmp_path / "typo" / "regtest")
    with pytest.raises(ValueError, match="template source"):
        TpService(object(), datadir=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        TpService(RegtestSource(mempool_interval=0), datadir=tmp_path / "file")


@pytest.mark.parametrize("kw, words", [
    (dict(chain="moon"), "chain: unknown chain"),
    (dict(source="ipc"), "source must be"),
    (dict(port=99999), "port: port 99999"),
    (dict(fee_delta=-3), "config.fee_delta"),
    (dict(mempool_interval=-1), "mempool_interval"),
    (dict(chain="main"), "--source regtest runs the built-in regtest"),
])
def test_facade_refuses_bad_settings_before_starting(tmp_path, kw, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        run(datadir=tmp_path, **kw)


def test_facade_refuses_a_missing_datadir(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        run(datadir=tmp_path / "nope")


def test_facade_serves_templates_and_mines(tmp_path):
    with run(datadir=tmp_path, port=0, mempool_interval=0) as tp:
        assert tp.datadir == tmp_path / "regtest"
        height = tp.call(lambda: tp.source.chain.height)
        tp.call(tp.source.chain.generate, 2)
        assert tp.call(lambda: tp.source.chain.height) == height + 2
        assert tp.metrics.snapshot()["tip_height"] == height + 3

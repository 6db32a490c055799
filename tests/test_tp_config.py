"""`sv2ffi tp` settings: sv2ffi.conf (our names and sv2-tp's, sections, command line over
file), listen address forms, ranges, hints for sv2-tp spellings, --version, defaults in
every --help, the RPC password off the command line, and the Core-like data directory.

sv2-tp's option names and forms are from its source (stratum-mining/sv2-tp, src/sv2-tp.cpp
AddArgs: -sv2bind=<addr>[:<port>] with [host]:port for IPv6, -sv2port, -sv2feedelta,
-templateinterval; share/examples/sv2-tp.conf)."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sv2ffi import cli
from sv2ffi.datadir import DatadirError, net_dir
from sv2ffi.tp import app, config_file, options
from sv2ffi.tp.config_file import ConfigFileError

ROOT = Path(__file__).resolve().parents[1]
SV2FFI = [sys.executable, "-m", "sv2ffi"]


def tp_args(*argv: str) -> argparse.Namespace:
    """What `sv2ffi tp ARGV` parses to, before the configuration file is applied."""
    full = ["tp", *argv]
    args = cli.build_parser().parse_args(full)
    args.argv = full
    return args


def settle(tmp_path: Path, conf: str, *argv: str) -> argparse.Namespace:
    """Parse, then apply ``conf`` (written to tmp_path/sv2ffi.conf) as `sv2ffi tp` does."""
    path = tmp_path / "sv2ffi.conf"
    path.write_text(conf)
    args = tp_args("--conf", str(path), *argv)
    warnings: list = []
    app.apply_config_file(args, warnings)
    args.warnings = warnings
    return args


# ---- the configuration file -------------------------------------------------------------------


def test_our_names_and_sv2tp_names_and_the_command_line_wins(tmp_path):
    args = settle(tmp_path, """
# comment
sv2port=9100
sv2feedelta=250
templateinterval=12
fee_delta=300
max-clients=7
sv2bind=0.0.0.0
rpc-user=tp
""", "--fee-delta", "5")
    assert args.sv2_port == 9100
    assert args.template_interval == 12.0
    assert args.fee_delta == 5  # command line over file
    assert args.max_clients == 7
    assert args.sv2_bind == ("0.0.0.0", None)
    assert args.rpc_user == "tp"
    assert args.chain is None  # nothing said: regtest for the built-in chain, later


@pytest.mark.parametrize("line, chain", [("testnet4=1", "testnet4"), ("signet=1", "signet"),
                                         ("regtest=1", "regtest"), ("chain=main", "main"),
                                         ("chain=testnet3", "test"), ("testnet=1", "test")])
def test_chain_selection_in_the_file(tmp_path, line, chain):
    assert settle(tmp_path, line + "\n").chain == chain


def test_sections_apply_to_their_chain_only(tmp_path):
    conf = """fee-delta=100
[signet]
fee-delta=200
sv2port=38000
[main]
fee-delta=300
"""
    assert settle(tmp_path, "signet=1\n" + conf).fee_delta == 200
    assert settle(tmp_path, "signet=1\n" + conf).sv2_port == 38000
    assert settle(tmp_path, conf, "--chain", "main").fee_delta == 300
    assert settle(tmp_path, conf).fee_delta == 100  # regtest: no section
    # --chain on the command line picks the section even when the file selects another
    assert settle(tmp_path, "chain=signet\n" + conf, "--chain", "main").fee_delta == 300


@pytest.mark.parametrize("conf, words", [
    ("sv2prot=8442\n", ["sv2ffi.conf:1", "unknown option 'sv2prot'", "did you mean 'sv2port'"]),
    ("\n\nfee-delta=-5\n", ["sv2ffi.conf:3", "-5 is negative"]),
    ("template-interval=-1\n", ["sv2ffi.conf:1", "not a non-negative"]),
    ("sv2port=70000\n", ["port 70000 is not in 0..65535"]),
    ("sv2bind=[::1\n", ["expected [IPv6]"]),
    ("source=bitcoind\n", ["not one of regtest, rpc"]),
    ("chain=mainnet\nregtest=1\n", ["sv2ffi.conf:2", "already selected 'main'"]),
    ("[regtest]\nchain=main\n", ["cannot be selected inside the [regtest] section"]),
    ("[moon]\n", ["unknown section [moon]"]),
    ("regtest\n", ["expected key=value"]),
    ("conf=/etc/other.conf\n", ["conf cannot be set inside"]),
    ("log-level=loud\n", ["log level 'loud'"]),
])
def test_mistakes_name_the_file_and_line(tmp_path, conf, words):
    with pytest.raises(ConfigFileError) as e:
        settle(tmp_path, conf)
    for w in words:
        assert w in str(e.value)


def test_sv2tp_options_without_counterpart_are_ignored_with_a_warning(tmp_path):
    args = settle(tmp_path, "ipcconnect=unix:/run/node.sock\npid=/run/sv2-tp.pid\ndebug=sv2\n"
                            "sv2port=8555\n")
    assert args.sv2_port == 8555 and args.log_level == "debug"
    assert args.ipcconnect == "unix:/run/node.sock"  # --source ipc's -ipcconnect
    assert any("pid" in w and "ignored" in w for w in args.warnings)


def test_a_whole_sv2tp_conf_carries_over(tmp_path):
    """Every option of sv2-tp's sample (share/examples/sv2-tp.conf), uncommented."""
    args = settle(tmp_path, """
##
## sv2-tp.conf configuration file.
##
sv2bind=127.0.0.1
sv2port=18447
templateinterval=10
sv2feedelta=2000
regtest=1
debug=sv2
loglevel=sv2:trace
printtoconsole=1
debugexclude=net
logips=1
loglevelalways=1
logsourcelocations=0
logthreadnames=0
logtimemicros=0
logtimestamps=1
shrinkdebugfile=1
debuglogfile=sv2-debug.log
pid=sv2-tp.pid
ipcconnect=unix
""")
    assert (args.sv2_port, args.template_interval, args.fee_delta, args.chain,
            args.log_level) == (18447, 10.0, 2000, "regtest", "debug")
    with pytest.raises(ConfigFileError, match="log level 'loud'"):
        settle(tmp_path, "loglevel=sv2:loud\n")


def test_the_example_in_contrib_is_valid():
    parser = cli.build_parser()._subparsers._group_actions[0].choices["tp"]
    entries = config_file.load(ROOT / "contrib" / "sv2ffi.conf.example")
    values = config_file.resolve(entries, parser)
    assert values["chain"] == "main" and values["source"] == "rpc"
    signet = config_file.resolve(entries, parser, chain="signet")
    assert signet["rpc_cookie_file"].endswith("signet/.cookie")


def test_default_conf_is_read_from_the_datadir_root(tmp_path):
    (tmp_path / "sv2ffi.conf").write_text("sv2port=9999\n")
    args = tp_args("--datadir", str(tmp_path))
    assert app.apply_config_file(args, []) == tmp_path / "sv2ffi.conf"
    assert args.sv2_port == 9999
    args = tp_args("--datadir", str(tmp_path), "--conf", "0")  # sv2-tp's -conf=0: none
    assert app.apply_config_file(args, []) is None and args.sv2_port is None
    with pytest.raises(app.SettingsError, match="does not exist"):
        app.apply_config_file(tp_args("--conf", str(tmp_path / "nope.conf")), [])


def test_a_password_in_a_readable_conf_is_warned_about(tmp_path):
    path = tmp_path / "sv2ffi.conf"
    path.write_text("rpc-password=hunter2\n")
    path.chmod(0o644)
    args = tp_args("--conf", str(path))
    warnings: list = []
    app.apply_config_file(args, warnings)
    assert args.rpc_password == "hunter2" and "chmod 600" in warnings[0]
    path.chmod(0o600)
    warnings.clear()
    app.apply_config_file(tp_args("--conf", str(path)), warnings)
    assert warnings == []


# ---- values and flags ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1", ("127.0.0.1", None)), ("0.0.0.0:8442", ("0.0.0.0", 8442)),
    ("[::1]:8442", ("::1", 8442)), ("[::]", ("::", None)), ("::1", ("::1", None)),
    ("tp.example.com:18447", ("tp.example.com", 18447)),
])
def test_sv2_bind_forms(text, want):
    assert options.bind_address(text) == want


@pytest.mark.parametrize("text", ["", "1.2.3.4:port", "[::1]x", "[nothere]:1", ":8442",
                                  "1.2.3.4:65536"])
def test_sv2_bind_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        options.bind_address(text)


def test_metrics_bind_forms():
    assert options.metrics_address("9842") == ("127.0.0.1", 9842)
    assert options.metrics_address("0.0.0.0:9842") == ("0.0.0.0", 9842)
    assert options.metrics_address("[::1]:9842") == ("::1", 9842)
    with pytest.raises(argparse.ArgumentTypeError, match="give a port"):
        options.metrics_address("0.0.0.0")


def test_bind_port_wins_over_sv2_port_when_listening(tmp_path):
    """As in sv2-tp (SplitHostPort overrides -sv2port): a real process, port from --sv2-bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(SV2FFI + ["tp", "--datadir", str(tmp_path), "--sv2-port", "1",
                                   "--sv2-bind", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert f"listening on 127.0.0.1:{port} " in line, line + p.stderr.read()
    finally:
        p.terminate()
        p.wait(30)


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(SV2FFI + list(argv), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv, ours", [
    (["tp", "-sv2port=8442"], "--sv2-port 8442"),
    (["tp", "-sv2bind=0.0.0.0"], "--sv2-bind 0.0.0.0"),
    (["tp", "-sv2feedelta=500"], "--fee-delta 500"),
    (["tp", "-templateinterval=3"], "--template-interval 3"),
    (["tp", "-regtest"], "--chain regtest"),
    (["tp", "-testnet4"], "--chain testnet4"),
    (["tp", "--signet"], "--chain signet"),
    (["tp", "-chain=main"], "--chain main"),
    (["tp", "-datadir=/var/lib/bitcoind"], "--datadir /var/lib/bitcoind"),
    (["tp", "-conf=/etc/sv2-tp.conf"], "--conf /etc/sv2-tp.conf"),
    (["tp", "-debug=sv2"], "--log-level debug"),
    (["-version"], "--version"),
])
def test_sv2tp_spellings_get_our_spelling(argv, ours, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"here it is {ours}" in err and "usage:" not in err


def test_sv2tp_option_without_counterpart_is_named(capsys):
    assert cli.main(["tp", "-pid=/run/sv2-tp.pid"]) == 2
    assert "no counterpart" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, words", [
    ("--template-interval", "-1", "not a non-negative"),
    ("--template-interval", "nan", "not a non-negative"),
    ("--fee-delta", "-1", "negative"),
    ("--sv2-port", "65536", "not in 0..65535"),
    ("--max-clients", "0", "not at least 1"),
    ("--mempool-interval", "-2", "not a non-negative"),
    ("--chain", "moon", "unknown chain"),
    ("--log-level", "verbose", "log level"),
])
def test_out_of_range_values_are_refused(flag, value, words, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["tp", flag, value])
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_version(capsys):
    import sv2ffi

    for argv in (["--version"], ["tp", "--version"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 0
        assert capsys.readouterr().out.strip() == f"sv2ffi {sv2ffi.__version__}"


def test_every_help_shows_defaults():
    """Every option of every command says its default (or what happens without it);
    switches (store_true) are off unless given."""
    parser = cli.build_parser()
    subs = parser._subparsers._group_actions[0].choices
    for name, sp in [("sv2ffi", parser), *subs.items()]:
        text = sp.format_help()
        for action in sp._actions:
            if not action.option_strings or isinstance(action, (
                    argparse._HelpAction, argparse._VersionAction, argparse._StoreTrueAction)):
                continue
            if action.required:
                continue
            helped = sp._get_formatter()._get_help_string(action) or ""
            assert "default" in helped, f"sv2ffi {name} {action.option_strings[0]}: no default"
        assert text


# ---- the RPC password ---------------------------------------------------------------------------


def test_rpc_password_from_file_env_or_flag(tmp_path, monkeypatch):
    pw = tmp_path / "pw"
    pw.write_text("s3cret:with#odd chars\n")
    assert app.rpc_password(tp_args("--rpc-password-file", str(pw))) == "s3cret:with#odd chars"
    monkeypatch.setenv(app.RPC_PASSWORD_ENV, "from-env")
    assert app.rpc_password(tp_args()) == "from-env"
    assert app.rpc_password(tp_args("--rpc-password", "flag")) == "flag"
    with pytest.raises(app.SettingsError, match="not both"):
        app.rpc_password(tp_args("--rpc-password-file", str(pw), "--rpc-password", "x"))
    with pytest.raises(app.SettingsError, match="cannot read"):
        app.rpc_password(tp_args("--rpc-password-file", str(tmp_path / "missing")))


def test_rpc_source_uses_the_password_file(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("pa55\n")
    args = tp_args("--source", "rpc", "--chain", "signet", "--rpc-user", "u",
                   "--rpc-password-file", str(pw))
    src = app.build_source(args, __import__("sv2ffi.bitcoin").bitcoin.network("signet"))
    assert (src.user, src.password, src.cookie_file) == ("u", "pa55", None)


# ---- the data directory --------------------------------------------------------------------------


def test_datadir_layout_and_refusals(tmp_path, monkeypatch):
    assert net_dir(tmp_path, "main") == tmp_path / "main"
    assert net_dir(tmp_path, "testnet3") == tmp_path / "testnet3"
    assert net_dir(tmp_path, "signet").is_dir()
    assert (os.stat(tmp_path / "signet").st_mode & 0o777) == 0o700
    with pytest.raises(DatadirError, match="does not exist"):
        net_dir(tmp_path / "typo", "main")
    assert not (tmp_path / "typo").exists()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert net_dir(None, "regtest") == tmp_path / "home" / ".sv2ffi" / "regtest"  # default: made


def test_keys_in_the_root_are_not_silently_replaced(tmp_path):
    from sv2ffi.keys import generate_datadir_keys

    generate_datadir_keys(tmp_path)  # the old flat layout
    with pytest.raises(DatadirError, match="per-network subdirectory"):
        net_dir(tmp_path, "main")


def test_tp_refuses_a_missing_datadir_and_keygen_too(tmp_path):
    for argv in (["tp", "--datadir", str(tmp_path / "nope")],
                 ["keygen", "--datadir", str(tmp_path / "nope")]):
        out = run_cli(*argv)
        assert out.returncode == 2 and "does not exist" in out.stderr, out.stderr
    assert not (tmp_path / "nope").exists()


def test_tp_process_from_a_conf_file(tmp_path):
    """The file alone configures a running TP: sv2-tp names, a section, log level; the
    shutdown line comes at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "sv2ffi.conf").write_text(
        f"regtest=1\nsv2port=1\nlog-level=warning\n[regtest]\nsv2port={port}\n"
        "templateinterval=1\nmempool-interval=0\nlog-level=info\n")
    p = subprocess.Popen(SV2FFI + ["tp", "--datadir", str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert f"listening on 127.0.0.1:{port} " in line, line + p.stderr.read()
        assert f"datadir {tmp_path / 'regtest'}" in line
    finally:
        p.terminate()
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert f"configuration file {tmp_path / 'sv2ffi.conf'}" in err
    assert "created a NEW authority key" in err and "WARNING" in err
    assert re.search(r"stopped after \d+ s: 0 clients served, 0 blocks submitted", err), err
    assert "shutting down (SIGTERM)" in err

"""The data directory and key files under hostile or careless conditions (issue 15, item 6).

Directories the TP creates are 0700 whatever the umask; a key file is read only up to a
small bound and base58 text is bounded before any arithmetic; keys readable by others are
reported with the fix; a stale ``.pub`` is rewritten from the secret; a data directory
that is a file, or a ``solved-blocks/`` the TP cannot write, stops it before it listens.

The tests run as root in CI, and root ignores permission bits: an unwritable directory is
made with ``chattr +i`` (which binds root too) or, for another user, with ``chmod``; a
regular file or a dangling symlink in place of a directory fails for everyone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys

import pytest

from sv2ffi import base58, errors, keys
from sv2ffi.datadir import DatadirError, net_dir
from sv2ffi.tp.regtest import RegtestChain
from sv2ffi.tp.regtest_rpc import RegtestRpcServer
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.regtest import RegtestSource
from sv2ffi.tp.storage import BLOCKS_DIR, save_block

SV2FFI = [sys.executable, "-m", "sv2ffi"]


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(SV2FFI + list(argv), capture_output=True, text=True, timeout=60)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# ---- directories: 0700 whatever the umask ----------------------------------------------------


@pytest.fixture(params=[0o000, 0o277], ids=["umask000", "umask277"])
def umask(request):
    """000 would leave a plain mkdir world-writable; 277 would leave mkdir(mode=0o700)
    at 0500, a directory its owner cannot write."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_directories_made_for_keys_and_blocks_are_0700(tmp_path, monkeypatch, umask):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    made = [net_dir(None, "signet")]  # the default root is created, then its signet/
    made.append(made[0].parent)
    keys.load_datadir_keys(tmp_path / "loaded")  # a datadir the key loader creates
    keys.generate_datadir_keys(tmp_path / "gen" / "net")  # and with its parent
    save_block(tmp_path / "blocks", 1, bytes(80))
    made += [tmp_path / "loaded", tmp_path / "gen", tmp_path / "gen" / "net",
             tmp_path / "blocks", tmp_path / "blocks" / BLOCKS_DIR]
    assert {str(p): oct(mode(p)) for p in made} == {str(p): oct(0o700) for p in made}


def test_tp_start_makes_its_datadir_and_solved_blocks_0700(tmp_path, umask):
    svc = TpService(RegtestSource(mempool_interval=0), datadir=tmp_path / "dd")

    async def main():
        await svc.start()
        await svc.stop()

    run(main())
    for p in (tmp_path / "dd", tmp_path / "dd" / BLOCKS_DIR):
        assert mode(p) == 0o700, p


@pytest.fixture(scope="module")
def chain():
    return RegtestChain(seed=3)


def test_built_in_rpc_cookie_directory_is_0700(tmp_path, chain, umask):
    cookie = tmp_path / "regtest" / "regtest-rpc" / ".cookie"

    async def main():
        server = RegtestRpcServer(chain, cookie_file=cookie)
        await server.start()
        try:
            return mode(cookie.parent.parent), mode(cookie.parent), mode(cookie)
        finally:
            await server.stop()

    assert run(main()) == (0o700, 0o700, 0o600)


# ---- key files: bounded reads, bounded base58 ----------------------------------------------


def _no_base58(*_a, **_k):
    raise AssertionError("base58 decoding reached for an oversized input")


def test_a_200kb_key_file_is_refused_by_size_before_any_decoding(tmp_path, monkeypatch):
    p = tmp_path / keys.STATIC_KEY_FILE
    p.write_text("2" * 200_000)
    monkeypatch.setattr(base58, "b58decode", _no_base58)
    with pytest.raises(errors.KeyFileTooLargeError) as e:
        keys.read_key_file(p)
    assert str(p) in str(e.value) and "200000 bytes" in str(e.value)
    assert isinstance(e.value, errors.KeyFormatError)  # callers catching that still do


def test_a_200kb_key_file_in_the_datadir_names_the_file(tmp_path):
    keys.generate_datadir_keys(tmp_path)
    p = tmp_path / keys.AUTHORITY_KEY_FILE
    p.write_text("2" * 200_000)
    with pytest.raises(errors.KeyFileTooLargeError, match=str(p)):
        keys.load_datadir_keys(tmp_path)


def test_key_file_bound_is_exact(tmp_path):
    """Whitespace around the key is allowed up to the bound, not a byte more."""
    good = keys.encode_secret_key(keys.Keypair(bytes(31) + b"\x07").secret)
    p = tmp_path / "k"
    p.write_text(good + "\n" * (keys.MAX_KEY_FILE_SIZE - len(good)))
    assert keys.read_key_file(p).secret == bytes(31) + b"\x07"
    p.write_text(good + "\n" * (keys.MAX_KEY_FILE_SIZE - len(good) + 1))
    with pytest.raises(errors.KeyFileTooLargeError):
        keys.read_key_file(p)


def test_a_key_file_that_is_not_a_regular_file_is_refused(tmp_path):
    with pytest.raises(errors.KeyFormatError, match="not a regular file"):
        keys.read_key_file(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening one for reading would block forever without a writer
    with pytest.raises(errors.KeyFormatError, match="not a regular file"):
        keys.read_key_file(fifo)


def test_sv2tp_import_reads_a_bounded_amount(tmp_path):
    (tmp_path / "auth").write_bytes(b"\x01" * 200_000)
    with pytest.raises(errors.KeyFileTooLargeError, match=str(tmp_path / "auth")):
        keys.import_sv2tp_keys(tmp_path / "auth", tmp_path / "out")


def test_base58_refuses_overlong_text_before_the_arithmetic():
    with pytest.raises(errors.KeyLengthError, match="200000 characters"):
        base58.b58decode("2" * 200_000)
    with pytest.raises(errors.KeyLengthError, match="characters"):
        keys.decode_authority_pubkey("2" * 200_000)
    limit = base58.MAX_TEXT_CHARS
    assert base58.b58decode("1" * limit) == bytes(limit)  # at the bound: decoded
    with pytest.raises(errors.KeyLengthError):
        base58.b58decode("1" * (limit + 1))
    # every key text this project reads fits with room to spare
    longest = keys.encode_authority_pubkey(b"\xff" * 32)
    assert len(longest) < limit // 2


# ---- key files readable by others: a WARNING with the fix ----------------------------------


@pytest.mark.parametrize("perm", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_key_files_readable_by_others_are_used_with_a_warning(tmp_path, caplog, perm):
    made = keys.generate_datadir_keys(tmp_path)
    p = tmp_path / keys.STATIC_KEY_FILE
    p.chmod(perm)
    with caplog.at_level("WARNING", logger="sv2ffi.keys"):
        assert keys.load_datadir_keys(tmp_path) == made  # warned, not refused
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(p) in warnings[0] and f"chmod 600 {p}" in warnings[0]
    assert f"{perm:04o}" in warnings[0]
    assert mode(p) == perm  # the operator's file is not changed behind their back


def test_private_key_files_give_no_warning(tmp_path, caplog):
    made = keys.generate_datadir_keys(tmp_path)
    (tmp_path / keys.AUTHORITY_KEY_FILE).chmod(0o400)  # read-only for the owner is fine
    with caplog.at_level("WARNING", logger="sv2ffi.keys"):
        assert keys.load_datadir_keys(tmp_path) == made
    assert not caplog.records


# ---- the .pub companion: the secret is the truth -------------------------------------------


@pytest.mark.parametrize("content", ["other", "garbage\n", "", "huge"])
def test_a_pub_file_that_does_not_match_the_secret_is_rewritten(tmp_path, caplog, content):
    made = keys.generate_datadir_keys(tmp_path)
    pub = tmp_path / keys.AUTHORITY_PUBKEY_FILE
    text = {"other": keys.encode_authority_pubkey(keys.Keypair.generate().xonly) + "\n",
            "huge": "2" * 200_000}.get(content, content)
    pub.write_text(text)
    pub.chmod(0o644)
    with caplog.at_level("WARNING", logger="sv2ffi.keys"):
        assert keys.load_datadir_keys(tmp_path) == made
    assert pub.read_text() == made.authority_pubkey_text + "\n"
    assert mode(pub) == 0o600
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(pub) in warnings[0]
    assert made.authority_pubkey_text in warnings[0] and "rewr" in warnings[0]


def test_a_missing_pub_file_is_recreated_and_a_matching_one_left_alone(tmp_path, caplog):
    made = keys.generate_datadir_keys(tmp_path)
    pub = tmp_path / keys.AUTHORITY_PUBKEY_FILE
    pub.unlink()
    keys.load_datadir_keys(tmp_path)
    assert pub.read_text() == made.authority_pubkey_text + "\n"
    before = os.stat(pub)
    with caplog.at_level("WARNING", logger="sv2ffi.keys"):
        keys.load_datadir_keys(tmp_path)
    assert not caplog.records
    after = os.stat(pub)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


# ---- --datadir that is a file ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["root", "chain"])
@pytest.mark.parametrize("cmd", ["tp", "keygen"])
def test_datadir_that_is_a_file_is_one_clear_line(tmp_path, cmd, where):
    if where == "root":
        root = target = tmp_path / "datadir"
    else:
        root, target = tmp_path, tmp_path / "regtest"
    target.write_text("not a directory\n")
    out = run_cli(cmd, "--datadir", str(root))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{target} is a file, not a directory" in lines[0], out.stderr
    assert target.read_text() == "not a directory\n"


def test_net_dir_explains_what_is_in_the_way(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("")
    with pytest.raises(DatadirError, match="is a file, not a directory"):
        net_dir(tmp_path / "f", "main")
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".sv2ffi").write_text("")  # the default root, as a file
    with pytest.raises(DatadirError, match="is a file, not a directory"):
        net_dir(None, "main")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "main").symlink_to(tmp_path / "gone")
    with pytest.raises(DatadirError, match="symbolic link to .*gone.*, which does not exist"):
        net_dir(tmp_path / "d", "main")


# ---- solved-blocks/ that cannot be written: refused before listening ---------------------------


def _chattr(flag: str, path) -> bool:
    if not shutil.which("chattr"):
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.fixture
def unwritable(request):
    """make(path): a directory nobody, root included, can create files in."""
    immutable = []

    def make(path):
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            path.chmod(0o500)
        elif _chattr("+i", path):  # ext4/xfs/btrfs; not on tmpfs or overlayfs
            immutable.append(path)
        else:
            pytest.skip("running as root where chattr +i is not supported: cannot make a "
                        "directory root cannot write")
        return path

    yield make
    for p in immutable:
        _chattr("-i", p)


@pytest.fixture(params=["file", "dangling-symlink", "read-only", "read-only-datadir"])
def blocked(request, tmp_path, unwritable):
    """A datadir whose solved-blocks/ cannot take a file; returns (datadir, words)."""
    d = tmp_path / "regtest"
    d.mkdir()
    blocks = d / BLOCKS_DIR
    if request.param == "file":
        blocks.write_text("")
        return d, "is a file, not a directory"
    if request.param == "dangling-symlink":
        blocks.symlink_to(tmp_path / "elsewhere")
        return d, "symbolic link"
    if request.param == "read-only":
        unwritable(blocks)
        return d, "not writable"
    unwritable(d)  # and solved-blocks/ does not exist yet
    return d, "cannot create"


def test_tp_service_does_not_start_without_a_writable_solved_blocks(blocked):
    d, words = blocked
    svc = TpService(RegtestSource(mempool_interval=0), datadir=d)
    with pytest.raises(DatadirError) as e:
        run(svc.start())
    msg = str(e.value)
    assert words in msg and str(d / BLOCKS_DIR) in msg, msg
    assert "before it is submitted" in msg
    assert svc.server is None  # never listened
    assert not (d / keys.AUTHORITY_KEY_FILE).exists()  # nor minted a key


def test_tp_cli_exits_2_without_a_writable_solved_blocks(blocked):
    d, words = blocked
    out = run_cli("tp", "--datadir", str(d.parent), "--sv2-port", "0")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "listening" not in out.stdout
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("sv2ffi tp: ") and words in last and str(d / BLOCKS_DIR) in last, \
        out.stderr

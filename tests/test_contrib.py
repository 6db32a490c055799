"""contrib/: the systemd unit and the Dockerfile, checked as far as this machine allows.

There is no systemd as PID 1 and no container engine here, so each file is validated
statically (systemd-analyze verify and its offline security score when available; the
Dockerfile's instructions parsed and checked for a non-root user, a health check and exec
forms), then its command is run as a plain process the way the init system or the engine
would run it: same arguments and paths (mapped into a temporary directory), stopped with
SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "contrib" / "sv2ffi-tp.service"
DOCKERFILE = ROOT / "contrib" / "Dockerfile"
BIN = Path(sys.executable).parent
T = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A child process with stdout lines read as they come and stderr kept."""

    def __init__(self, argv, env, cwd, journald=False):
        self.err_r, err_w = os.pipe()
        if journald:  # what systemd does: stderr is the journal stream it names
            st = os.fstat(err_w)
            env = dict(env, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err_w, env=env, cwd=cwd,
                                  text=True)
        os.close(err_w)
        self.err: list[bytes] = []
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        while chunk := os.read(self.err_r, 65536):
            self.err.append(chunk)

    def expect(self, pattern: str) -> re.Match:
        lines = []
        for line in self.p.stdout:
            lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"{pattern!r} not printed: {lines}\n{self.stderr()}")

    def stop(self) -> int:
        self.p.send_signal(signal.SIGTERM)
        code = self.p.wait(T)
        return code

    def stderr(self) -> str:
        if self.p.poll() is not None:
            self._t.join(10)
        return b"".join(self.err).decode(errors="replace")


# ---- systemd ----------------------------------------------------------------------------------


def parse_unit(text: str) -> dict:
    """{section: [(key, value)]}, continuation lines joined, comments dropped."""
    out: dict = {}
    section = None
    text = re.sub(r"\s*\\\n\s*", " ", text)
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = []
            continue
        key, value = line.split("=", 1)
        out[section].append((key.strip(), value.strip()))
    return out


def unit_value(unit: dict, key: str, section: str = "Service") -> str:
    values = [v for k, v in unit[section] if k == key]
    assert values, f"{key}= missing in [{section}]"
    return values[-1]


def test_unit_is_hardened_and_runs_as_its_own_user():
    unit = parse_unit(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    assert unit_value(unit, "User") not in ("root", "0")
    for key, want in [("NoNewPrivileges", "true"), ("ProtectSystem", "strict"),
                      ("ProtectHome", "true"), ("PrivateTmp", "true"),
                      ("PrivateDevices", "true"), ("CapabilityBoundingSet", ""),
                      ("UMask", "0077"), ("StateDirectoryMode", "0700")]:
        assert unit_value(unit, key) == want, key
    assert "--datadir /var/lib/sv2ffi" in unit_value(unit, "ExecStart")


def systemd_ready_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's sv2ffi (verify checks it exists)."""
    text = UNIT.read_text().replace("/opt/sv2ffi/bin/sv2ffi", str(BIN / "sv2ffi"))
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path):
    path = systemd_ready_unit(tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=T)
    # verify exits 0 on unknown keys and bad values too, only printing them: no output
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), \
        proc.stdout + proc.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                          str(path)], capture_output=True, text=True, timeout=T)
    if sec.returncode != 0 and "offline" in sec.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout)
    assert m, sec.stdout + sec.stderr
    assert float(m.group(1)) <= 2.0, sec.stdout  # systemd rates <= 2.0 "OK"


def test_execstart_runs_as_systemd_would_run_it(tmp_path):
    """ExecStart with the unit's paths mapped into tmp: StateDirectory exists (systemd makes
    it), the configuration in /etc/sv2ffi is read, journald gets timestamp-free lines,
    SIGTERM stops it cleanly, and UMask=0077 plus the TP's own modes keep keys private."""
    unit = parse_unit(UNIT.read_text())
    state, etc = tmp_path / "var-lib-sv2ffi", tmp_path / "etc-sv2ffi"
    state.mkdir(mode=0o700)
    etc.mkdir()
    port = free_port()
    (etc / "sv2ffi.conf").write_text(f"regtest=1\nsv2port={port}\nmempool-interval=0\n")
    argv = shlex.split(unit_value(unit, "ExecStart"))
    assert argv[0] == "/opt/sv2ffi/bin/sv2ffi"
    argv = [str(BIN / "sv2ffi")] + [a.replace("/var/lib/sv2ffi", str(state))
                                    .replace("/etc/sv2ffi", str(etc)) for a in argv[1:]]
    env = {"PATH": os.environ["PATH"], "HOME": str(state)}
    for assignment in (v for k, v in unit["Service"] if k == "Environment"):
        k, v = assignment.split("=", 1)
        env[k] = v
    old = os.umask(0o077)
    try:
        p = Running(argv, env, cwd="/", journald=True)
    finally:
        os.umask(old)
    p.expect(rf"listening on 127\.0\.0\.1:{port} ")
    p.expect(r"authority public key: 9\w+")
    assert p.stop() == 0, p.stderr()
    err = p.stderr()
    assert "stopped after" in err and "shutting down (SIGTERM)" in err
    assert all(re.match(r"(DEBUG|INFO|WARNING|ERROR) ", ln) for ln in err.splitlines()), err
    assert (os.stat(state / "regtest").st_mode & 0o777) == 0o700
    assert (os.stat(state / "regtest" / "sv2_authority_key").st_mode & 0o777) == 0o600


# ---- Docker -------------------------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[list[tuple[str, str]]]:
    """Stages, each a list of (INSTRUCTION, arguments); continuations joined."""
    text = re.sub(r"\s*\\\n\s*", " ", text)
    stages: list = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append([])
        assert stages, "an instruction before FROM"
        stages[-1].append((instr, rest.strip()))
    return stages


def last(stage, instr: str) -> str:
    values = [v for i, v in stage if i == instr]
    assert values, f"no {instr} in the final stage"
    return values[-1]


def exec_form(value: str) -> list[str]:
    argv = json.loads(value)  # exec (JSON) form: no shell between the engine and the TP
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def test_dockerfile_is_non_root_with_a_healthcheck():
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) == 2  # build with a compiler, run without one
    final = stages[-1]
    for _instr, image in (s[0] for s in stages):
        assert re.match(r"[\w./-]+:[\w.-]+( AS \w+)?$", image) and ":latest" not in image, image
    user = last(final, "USER").split(":")[0]
    assert user not in ("root", "0")
    assert [i for i, _ in final].index("USER") < [i for i, _ in final].index("ENTRYPOINT")
    hc = last(final, "HEALTHCHECK")
    assert re.match(r"(--\w[\w-]*=\S+ )*CMD \[", hc), hc
    entry = exec_form(last(final, "ENTRYPOINT"))
    assert entry[:2] == ["sv2ffi", "tp"]
    exec_form(last(final, "CMD"))
    assert not any(i == "ENV" and re.search(r"PASSWORD|SECRET", v, re.I) for i, v in final)
    ignore = (ROOT / "contrib" / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignore and ".git" in ignore and "build" in ignore


def test_dockerfile_entry_point_and_healthcheck_run_as_processes(tmp_path):
    """ENTRYPOINT + CMD as `docker run` would start them (PATH with the venv's bin in place
    of /opt/sv2ffi/bin, the volume in tmp); no bitcoind: the TP waits for it and stays
    healthy. Then HEALTHCHECK's command, before and after SIGTERM."""
    final = parse_dockerfile(DOCKERFILE.read_text())[-1]
    volume = tmp_path / "var-lib-sv2ffi"
    volume.mkdir(mode=0o700)
    metrics = free_port()

    def mapped(argv):
        return [a.replace("/var/lib/sv2ffi", str(volume))
                .replace("127.0.0.1:9842", f"127.0.0.1:{metrics}") for a in argv]

    argv = mapped(exec_form(last(final, "ENTRYPOINT")) + exec_form(last(final, "CMD")))
    argv += ["--sv2-port", "0"]  # `docker run IMAGE ARGS` replaces CMD; here: CMD + a port
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(volume),
           "PYTHONUNBUFFERED": "1"}
    p = Running(argv, env, cwd=str(volume))
    try:
        p.expect(r"listening on 0\.0\.0\.0:\d+ ")
        p.expect(r"authority public key: 9\w+")
        p.expect(rf"metrics: http://127\.0\.0\.1:{metrics}/metrics")
        hc = last(final, "HEALTHCHECK")
        check = mapped(exec_form(hc[hc.index("CMD ") + 4:]))
        assert check[0] == "python"
        check[0] = sys.executable
        ok = subprocess.run(check, capture_output=True, text=True, timeout=T)
        assert ok.returncode == 0, ok.stderr
    finally:
        code = p.stop()
    assert code == 0, p.stderr()
    assert (volume / "main" / "sv2_authority_key").is_file()
    down = subprocess.run(check, capture_output=True, text=True, timeout=T)
    assert down.returncode != 0  # nothing answers: unhealthy

"""The tip watch's JSON-RPC connection on the event loop (sources/rpc_stream.py), against
a small HTTP server that answers the way bitcoind's does (HTTP/1.1, Content-Length,
keep-alive; JSON-RPC errors as a JSON body with the node's code; 401 with no body)."""

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sv2ffi.errors import RpcError
from sv2ffi.tp.sources.rpc_stream import RpcStream, RpcTimeout, read_reply, read_tip_reply


def run(coro):
    return asyncio.run(coro)


async def read_request(reader):
    """One request as bitcoind reads it: its head, and its JSON body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                  if h.lower().startswith(b"content-length")][0])
    return head, json.loads(await reader.readexactly(length))


async def http_server(answer):
    """A server that calls ``answer(request_json, n)`` for each request on a connection
    and writes the bytes it returns (None: close without answering)."""
    seen = []

    async def on_conn(reader, writer):
        n = 0
        try:
            while True:
                head, req = await read_request(reader)
                seen.append((head, req))
                n += 1
                out = answer(req, n)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def reply(obj, status=b"200 OK", extra=b""):
    body = json.dumps(obj).encode()
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_results_come_back_on_one_kept_connection_with_our_credentials():
    async def main():
        server, port, seen = await http_server(
            lambda req, n: reply({"result": {"hash": "ab" * 32, "height": n}, "error": None,
                                  "id": req["id"]}))
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic dTpw")
        try:
            assert await s.call("waitfornewblock", 100, timeout=5) == {"hash": "ab" * 32,
                                                                       "height": 1}
            assert (await s.call("waitfornewblock", 100, "cd" * 32, timeout=5))["height"] == 2
        finally:
            s.close()
            server.close()
        assert len(seen) == 2 and b"Authorization: Basic dTpw" in seen[0][0]
        assert seen[1][1]["method"] == "waitfornewblock" and seen[1][1]["params"] == [100, "cd" * 32]
    run(main())


def test_node_errors_keep_their_code_and_401_says_credentials():
    async def main():
        answers = iter([
            reply({"result": None, "error": {"code": -8, "message": "bad param"}, "id": 1},
                  b"500 Internal Server Error"),
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"])
        server, port, _ = await http_server(lambda req, n: next(answers))
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x")
        try:
            with pytest.raises(RpcError) as e:
                await s.call("waitfornewblock", timeout=5)
            assert e.value.code == -8 and "bad param" in str(e.value)
            with pytest.raises(RpcError, match="credentials"):
                await s.call("waitfornewblock", timeout=5)
        finally:
            s.close()
            server.close()
    run(main())


def test_a_kept_connection_the_node_closed_is_reopened_once():
    async def main():
        # the first connection answers once, then closes on the next request
        server, port, seen = await http_server(
            lambda req, n: reply({"result": n, "error": None, "id": 1}) if n == 1 else None)
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x")
        try:
            assert await s.call("getblockcount", timeout=5) == 1
            assert await s.call("getblockcount", timeout=5) == 1  # a new connection's first
        finally:
            s.close()
            server.close()
        assert len(seen) == 3
    run(main())


def test_timeouts_unreachable_nodes_and_bad_replies_are_typed():
    async def main():
        server, port, _ = await http_server(lambda req, n: b"")  # never answers
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x")
        with pytest.raises(RpcTimeout):
            await s.call("waitfornewblock", timeout=0.2)
        server.close()
        await server.wait_closed()
        with pytest.raises(RpcError, match="unreachable"):
            await RpcStream("127.0.0.1", port, "/", lambda: b"Basic x").call("x", timeout=5)
        for bad in (b"SSH-2.0-OpenSSH\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\n\r\n"):
            server, port, _ = await http_server(lambda req, n, bad=bad: bad)
            s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x")
            with pytest.raises(RpcError):
                await s.call("x", timeout=5)
            s.close()
            server.close()
    run(main())


def test_a_kept_warm_connection_is_reopened_when_the_node_closes_it_idle_and_sends_at_once():
    """bitcoind closes a keep-alive connection idle for -rpcservertimeout (30 s by
    default); the tip's getblocktemplate must still leave in the tip's own callback
    (``send_now``), so a warm stream reopens as soon as the node closes it."""
    async def main():
        conns, served = [], []

        async def on_conn(reader, writer):
            conns.append(writer)
            me = len(conns)
            try:
                _, req = await read_request(reader)
                served.append((me, req["method"]))
                writer.write(reply({"result": req["method"], "error": None, "id": req["id"]}))
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()  # one call per connection: an idle timeout right after it

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x", keep_warm=True)
        try:
            assert not s.send_now("getblocktemplate", {})  # never connected: call does it
            assert await s.call("first", timeout=5) == "first"
            for _ in range(200):  # the node closed it; the stream opened another
                if s.reopened and s.connected:
                    break
                await asyncio.sleep(0.01)
            assert s.reopened >= 1 and len(conns) == 2
            assert s.send_now("getblocktemplate", {"rules": ["segwit"]})  # written at once
            assert await s.call("getblocktemplate", timeout=5, sent=True) == "getblocktemplate"
            assert served == [(1, "first"), (2, "getblocktemplate")]  # on the reopened one
        finally:
            s.close()
            server.close()
            await server.wait_closed()

    run(main())


def test_a_large_reply_in_small_pieces_and_a_split_head_come_back_whole():
    """A 2 MB body (a 3,000-transaction getblocktemplate is 1.7 MB) written in odd-sized
    pieces, the head itself split inside its Content-Length line; then a reply that says
    Connection: close is still read whole, and the next call opens a new connection."""
    big = {"result": "ab" * 1_000_000, "error": None, "id": 1}

    async def main():
        conns = []

        async def on_conn(reader, writer):
            conns.append(writer)
            try:
                while True:
                    _, req = await read_request(reader)
                    if req["method"] == "big":
                        out = reply(dict(big, id=req["id"]))
                        cut = out.index(b"Content-Length") + 9
                        for i, piece in enumerate((out[:cut], out[cut:cut + 70_001],
                                                   out[cut + 70_001:])):
                            writer.write(piece)
                            await writer.drain()
                            await asyncio.sleep(0.01 * (i < 2))
                    else:
                        writer.write(reply({"result": req["method"], "error": None,
                                            "id": req["id"]}, extra=b"Connection: close\r\n"))
                        await writer.drain()
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x", max_reply=4 << 20)
        try:
            assert await s.call("big", timeout=5) == big["result"]
            assert s.last_byte_at >= s.sent_at > 0
            assert await s.call("closing", timeout=5) == "closing"
            assert await s.call("again", timeout=5) == "again"
            assert len(conns) == 2
        finally:
            s.close()
            server.close()
            await server.wait_closed()

    run(main())


def test_a_node_gone_inside_a_reply_is_unreachable_not_a_short_result():
    async def main():
        body = json.dumps({"result": "x" * 5000, "error": None, "id": 1}).encode()
        cut = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body[:1000])
        async def on_conn(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(cut)  # and goes away
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x")
        try:
            with pytest.raises(RpcError, match="unreachable"):
                await s.call("x", timeout=5)
            assert not s.connected
        finally:
            s.close()
            server.close()
            await server.wait_closed()

    run(main())


def test_an_https_node_is_verified_and_a_large_reply_reads_whole_over_tls(tmp_path, monkeypatch):
    """An https:// --rpc-url (a TLS proxy in front of bitcoind): the reply reader works
    over TLS too (asyncio hands it decrypted bytes), and the proxy's certificate is
    verified against the trusted roots (here a test CA named by SSL_CERT_FILE): a server
    whose certificate is not trusted is unreachable, not read."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def cert_for(name):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        c, k = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return c, k

    trusted, stranger = cert_for("trusted"), cert_for("stranger")
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted[0]))
    big = "cd" * 400_000

    async def serve(pair):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*pair)

        async def on_conn(reader, writer):
            try:
                while True:
                    _, req = await read_request(reader)
                    writer.write(reply({"result": big, "error": None, "id": req["id"]}))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            writer.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=ctx)
        return server, server.sockets[0].getsockname()[1]

    async def main():
        server, port = await serve(trusted)
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x", tls=True)
        try:
            assert await s.call("x", timeout=10) == big
            assert await s.call("again", timeout=10) == big  # the same kept connection
        finally:
            s.close()
            server.close()
            await server.wait_closed()
        server, port = await serve(stranger)
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x", tls=True)
        try:
            with pytest.raises(RpcError, match="unreachable.*(?i:certificate)"):
                await s.call("x", timeout=10)
        finally:
            s.close()
            server.close()
            await server.wait_closed()

    run(main())


def test_on_reply_sees_each_whole_reply_before_the_awaiting_call_resumes(caplog):
    """The tip watch acts on a waitfornewblock reply in the protocol callback that read
    its last byte (``on_reply``), one loop iteration before its task resumes: the hook
    gets every whole reply, errors included, as (status, body), before ``call`` returns
    it; a hook that raises is logged and the call still gets its reply."""
    async def main():
        server, port, _ = await http_server(
            lambda req, n: reply({"result": {"height": n}, "error": None, "id": req["id"]})
            if n < 3 else reply({"result": None, "error": {"code": -8, "message": "no"},
                                 "id": req["id"]}, b"500 Internal Server Error"))
        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic dTpw")
        seen, returned = [], []

        def hook(status, body):
            seen.append((status, json.loads(body).get("result"), len(returned)))
            if len(seen) == 2:
                raise RuntimeError("a hook's own bug")
        s.on_reply = hook
        try:
            returned.append(await s.call("waitfornewblock", 100, timeout=5))
            returned.append(await s.call("waitfornewblock", 100, timeout=5))
            with pytest.raises(RpcError) as e:
                await s.call("waitfornewblock", 100, timeout=5)
            assert e.value.code == -8
        finally:
            s.close()
            server.close()
        # each reply reached the hook before its call returned (returned had n-1 entries)
        assert seen == [(200, {"height": 1}, 0), (200, {"height": 2}, 1), (500, None, 2)]
        assert returned == [{"height": 1}, {"height": 2}]
    with caplog.at_level("ERROR", logger="sv2ffi.tp.rpc"):
        run(main())
    assert "handling a reply as it arrived failed" in caplog.text


def test_a_long_body_is_read_ahead_as_it_arrives_and_the_state_goes_with_the_reply():
    """A body of READ_AHEAD_MIN bytes or more is handed to ``read_ahead`` in the protocol
    callback as it arrives (every READ_AHEAD_STEP bytes at least, never at its last byte,
    which the reply's reader takes), and the state it returned last reaches ``read``; a
    short one is not (a getblocktemplate reply's transactions are read while the rest of it
    arrives: sources/gbt.py)."""
    from sv2ffi.tp.sources import rpc_stream as rs

    big = {"result": "x" * (rs.READ_AHEAD_MIN * 2), "error": None, "id": 1}

    async def main():
        server, port, _ = await http_server(
            lambda req, n: reply(big if n == 1 else {"result": 1, "error": None, "id": 2}))
        calls = []

        def ahead(body, state, got):
            calls.append((len(body), state, got))
            return len(calls)

        async def read(code, raw, state):
            return code, len(raw), state

        s = RpcStream("127.0.0.1", port, "/", lambda: b"Basic x")
        s.read_ahead = ahead
        try:
            code, n, state = await s.call("getblocktemplate", timeout=5, read=read)
            assert code == 200 and calls and state == len(calls)
            assert all(size == n and prev == (i or None) and got < n
                       for i, (size, prev, got) in enumerate(calls))
            gots = [got for _, _, got in calls]
            assert gots == sorted(gots) and all(b - a >= rs.READ_AHEAD_STEP
                                                for a, b in zip(gots, gots[1:]))
            calls.clear()
            assert await s.call("x", timeout=5, read=read) == (200, 37, None) and not calls
        finally:
            s.close()
            server.close()
    run(main())


# ---- a waitfornewblock reply in bitcoind's own form -----------------------------------

def core_reply(block_hash: bytes, height: int, rid, jsonrpc2: bool) -> bytes:
    """As Core writes it (src/rpc/request.cpp JSONRPCReplyObj, UniValue::write without
    indentation, then "\\n" in httprpc.cpp): result, error, id for a 1.0 request;
    jsonrpc, result, id (no error when there is none) for a 2.0 one."""
    result = {"hash": block_hash[::-1].hex(), "height": height}
    reply = {"jsonrpc": "2.0", "result": result, "id": rid} if jsonrpc2 else \
        {"result": result, "error": None, "id": rid}
    return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 10**9 - 1),
       st.one_of(st.none(), st.integers(0, 2**63 - 1)), st.booleans(), st.booleans())
def test_a_tip_reply_in_cores_form_reads_as_the_json_module_reads_it(block_hash, height, rid,
                                                                       jsonrpc2, as_array):
    raw = core_reply(block_hash, height, rid, jsonrpc2)
    raw = bytearray(raw) if as_array else raw  # the reader hands over its bytearray
    r = read_reply("waitfornewblock", 200, raw)
    assert read_tip_reply(raw) == (block_hash, height) == (bytes.fromhex(r["hash"])[::-1],
                                                            r["height"])


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 10**9 - 1), st.booleans(),
       st.data())
def test_anything_else_is_left_to_the_json_module_and_nothing_is_misread(block_hash, height,
                                                                        jsonrpc2, data):
    """Another form (spaces, other keys, an error, upper-case hex, a cut or changed byte)
    is None for the fast reader, or, where a changed byte still makes a reply it reads,
    exactly what the json module reads from it too."""
    raw = bytearray(core_reply(block_hash, height, 1, jsonrpc2))
    how = data.draw(st.sampled_from(["byte", "cut", "spaces", "error", "extra", "upper"]))
    if how == "byte":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    elif how == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw) - 2))]
    elif how == "spaces":
        raw = bytearray(json.dumps(json.loads(raw)).encode())
    elif how == "error":
        raw = bytearray(b'{"result":null,"error":{"code":-1,"message":"x"},"id":1}\n')
    elif how == "extra":
        raw = raw.replace(b'"height"', b'"x":1,"height"')
    else:
        raw = raw.replace(block_hash[::-1].hex().encode(), block_hash[::-1].hex().upper().encode())
    got = read_tip_reply(raw)
    if how != "byte":
        assert got is None or how == "upper" and block_hash[::-1].hex() == \
            block_hash[::-1].hex().upper()  # no letter in the hex: the same bytes
        return
    if got is not None:
        r = read_reply("waitfornewblock", 200, raw)
        assert got == (bytes.fromhex(r["hash"])[::-1], r["height"])

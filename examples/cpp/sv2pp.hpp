// sv2pp.hpp: small C++17 conveniences over libsv2's C API, shared by the examples.
//
// Nothing here is needed to use libsv2 from C++ (sv2.h works unchanged); it shows one
// way to tie the C ownership rules to scopes: a Received frees its message, a Bytes its
// buffer, and handles live in unique_ptrs. Sockets are plain POSIX on 127.0.0.1, every
// wait bounded by poll() so a silent peer cannot hang an example.
#pragma once

#include "sv2.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sv2 {

struct Error : std::runtime_error {
    Sv2Status status;
    Error(Sv2Status s, const std::string& what)
        : std::runtime_error(what + ": " + sv2_status_name(s) + ": " + sv2_last_error()),
          status(s) {}
};

inline Sv2Status check(Sv2Status s, const char* what)
{
    if (s < 0) throw Error(s, what);
    return s;
}

// A message the library returned (decoder or connection); freed with the object.
class Received {
public:
    Received() : m_{} {}
    ~Received() { sv2_message_free(&m_); }
    Received(const Received&) = delete;
    Received& operator=(const Received&) = delete;
    Sv2Message* reset() { sv2_message_free(&m_); return &m_; }  // for the _next out-param
    const Sv2Message& operator*() const { return m_; }
    const Sv2Message* operator->() const { return &m_; }

private:
    Sv2Message m_;
};

// Bytes the library returned (a frame, connection output); freed with the object.
class Bytes {
public:
    Bytes() : b_{} {}
    ~Bytes() { sv2_bytes_free(&b_); }
    Bytes(const Bytes&) = delete;
    Bytes& operator=(const Bytes&) = delete;
    Sv2Bytes* reset() { sv2_bytes_free(&b_); return &b_; }
    const uint8_t* data() const { return b_.data; }
    size_t size() const { return b_.len; }

private:
    Sv2Bytes b_;
};

// Views for building messages: the message points at memory the caller keeps alive.
inline Sv2Bytes view(const std::vector<uint8_t>& v) { return Sv2Bytes{v.data(), v.size()}; }
inline Sv2Bytes view(const std::string& s)
{
    return Sv2Bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string text(const Sv2Bytes& b)
{
    return b.len ? std::string(reinterpret_cast<const char*>(b.data), b.len) : std::string();
}
inline std::string hex(const uint8_t* p, size_t n)
{
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < n; i++) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    return out;
}

struct DecoderFree { void operator()(Sv2Decoder* d) const { sv2_decoder_free(d); } };
struct ConnectionFree { void operator()(Sv2Connection* c) const { sv2_connection_free(c); } };
using Decoder = std::unique_ptr<Sv2Decoder, DecoderFree>;
using Connection = std::unique_ptr<Sv2Connection, ConnectionFree>;

template <class T>
T checked(T handle, const char* what)
{
    if (!handle.get()) throw Error(SV2_ERR_INTERNAL, what);
    return handle;
}

// ---- TCP on the loopback interface ---------------------------------------------------

class Socket {
public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    ~Socket() { if (fd_ >= 0) ::close(fd_); }
    Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Socket& operator=(Socket&& o) noexcept { std::swap(fd_, o.fd_); return *this; }
    Socket(const Socket&) = delete;
    int fd() const { return fd_; }

    static Socket listen(uint16_t port)
    {
        Socket s(::socket(AF_INET, SOCK_STREAM, 0));
        if (s.fd_ < 0) fail("socket");
        int one = 1;
        ::setsockopt(s.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a = loopback(port);
        if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) fail("bind");
        if (::listen(s.fd_, 16) < 0) fail("listen");
        return s;
    }

    static Socket connect(uint16_t port)
    {
        Socket s(::socket(AF_INET, SOCK_STREAM, 0));
        if (s.fd_ < 0) fail("socket");
        sockaddr_in a = loopback(port);
        if (::connect(s.fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) fail("connect");
        int one = 1;
        ::setsockopt(s.fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return s;
    }

    uint16_t local_port() const
    {
        sockaddr_in a{};
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        return ntohs(a.sin_port);
    }

    // Waits at most timeout_ms for a client; an invalid Socket on timeout.
    Socket accept(int timeout_ms) const
    {
        if (!wait(timeout_ms)) return Socket();
        Socket c(::accept(fd_, nullptr, nullptr));
        if (c.fd_ < 0) fail("accept");
        int one = 1;
        ::setsockopt(c.fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return c;
    }

    void write_all(const uint8_t* p, size_t n) const
    {
        while (n) {
            ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) fail("send");
            p += k;
            n -= static_cast<size_t>(k);
        }
    }

    // Some bytes (0 = the peer closed); throws after timeout_ms without any.
    size_t read_some(uint8_t* p, size_t cap, int timeout_ms) const
    {
        if (!wait(timeout_ms)) throw std::runtime_error("timed out waiting for the peer");
        ssize_t k;
        do k = ::recv(fd_, p, cap, 0); while (k < 0 && errno == EINTR);
        if (k < 0) {
            if (errno == ECONNRESET) return 0;
            fail("recv");
        }
        return static_cast<size_t>(k);
    }

    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_;

    bool wait(int timeout_ms) const
    {
        pollfd p{fd_, POLLIN, 0};
        int r;
        do r = ::poll(&p, 1, timeout_ms); while (r < 0 && errno == EINTR);
        if (r < 0) fail("poll");
        return r > 0;
    }
    static sockaddr_in loopback(uint16_t port)
    {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return a;
    }
    [[noreturn]] static void fail(const char* what)
    {
        throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
    }
};

// ---- messages over a socket through an Sv2Connection (plain or Noise) ------------------

class Channel {
public:
    Channel(Socket sock, Connection conn) : sock_(std::move(sock)), conn_(std::move(conn)) {}

    // Writes whatever the connection queued (handshake acts, frames).
    void flush()
    {
        Bytes out;
        check(sv2_connection_take_output(conn_.get(), out.reset()), "take_output");
        if (out.size()) sock_.write_all(out.data(), out.size());
    }

    void handshake(int timeout_ms)
    {
        flush();  // act 1 on an initiator, nothing on a responder
        uint8_t buf[4096];
        while (!sv2_connection_is_established(conn_.get())) {
            size_t n = sock_.read_some(buf, sizeof buf, timeout_ms);
            if (!n) throw std::runtime_error("peer closed during the handshake");
            check(sv2_connection_feed(conn_.get(), buf, n), "feed (handshake)");
            flush();
        }
    }

    void send(const Sv2Message& msg)
    {
        check(sv2_connection_send(conn_.get(), &msg), "send");
        flush();
    }

    // The next message; false when the peer closed the connection.
    bool recv(Received& out, int timeout_ms)
    {
        uint8_t buf[65536];
        for (;;) {
            Sv2Status st = check(sv2_connection_next(conn_.get(), out.reset()), "next");
            if (st == SV2_OK) return true;
            size_t n = sock_.read_some(buf, sizeof buf, timeout_ms);
            if (!n) return false;
            check(sv2_connection_feed(conn_.get(), buf, n), "feed");
            flush();
        }
    }

    Sv2Connection* connection() const { return conn_.get(); }

private:
    Socket sock_;
    Connection conn_;
};

}  // namespace sv2

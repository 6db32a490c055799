// template_provider.cpp: a plain-framing SV2 template provider on 127.0.0.1, in C++.
//
// The successor of the old sv2-ffi interop example, on the codec part of the C API:
// frames come in through an Sv2Decoder, replies are built as C structs and framed with
// sv2_encode. The message logic (Success/Error for SetupConnection, a NewTemplate and a
// SetNewPrevHash for CoinbaseOutputConstraints, ...) is in mini_tp.hpp.
//
//   template_provider [--port N] [--connections N] [--corrupt-target]
//
// Prints "listening 127.0.0.1:PORT", then a transcript line per message; serves
// connections one after another (all of them with --connections 0) and exits 0.
#include "mini_tp.hpp"

#include <cstdlib>
#include <iostream>

namespace {

void send(const sv2::Socket& sock, const Sv2Message& msg)
{
    sv2::Bytes frame;
    sv2::check(sv2_encode(&msg, frame.reset()), "sv2_encode");
    sock.write_all(frame.data(), frame.size());
}

void serve(const sv2::Socket& client, bool corrupt)
{
    sv2::Decoder dec = sv2::checked(sv2::Decoder(sv2_decoder_new()), "sv2_decoder_new");
    mini_tp::Session session;
    if (corrupt) session.corrupt_target();
    uint8_t buf[65536];
    for (;;) {
        size_t n = client.read_some(buf, sizeof buf, 10000);
        if (!n) return;  // the peer closed
        sv2::check(sv2_decoder_feed(dec.get(), buf, n), "sv2_decoder_feed");
        sv2::Received msg;
        for (;;) {
            Sv2Status st = sv2_decoder_next(dec.get(), msg.reset());
            if (st == SV2_NEED_MORE_DATA) break;
            if (st == SV2_ERR_UNKNOWN_MESSAGE) {  // consumed; the stream goes on
                std::cout << "< (unknown message skipped: " << sv2_last_error() << ")\n";
                continue;
            }
            sv2::check(st, "sv2_decoder_next");
            std::vector<Sv2Message> replies;
            std::string log;
            bool keep = session.on_message(*msg, replies, log);
            std::cout << "< " << log << "\n";
            for (const Sv2Message& r : replies) {
                send(client, r);
                std::cout << "> " << mini_tp::name_of(r) << "\n";
            }
            std::cout.flush();
            if (!keep) return;
        }
    }
}

}  // namespace

int main(int argc, char** argv)
{
    uint16_t port = 0;
    long connections = 0;
    bool corrupt = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--port" && i + 1 < argc) port = static_cast<uint16_t>(std::atoi(argv[++i]));
        else if (a == "--connections" && i + 1 < argc) connections = std::atol(argv[++i]);
        else if (a == "--corrupt-target") corrupt = true;
        else {
            std::cerr << "usage: template_provider [--port N] [--connections N] [--corrupt-target]\n";
            return 2;
        }
    }
    if (sv2_abi_version() != SV2_ABI_VERSION) {
        std::cerr << "libsv2 ABI " << sv2_abi_version() << ", header " << SV2_ABI_VERSION << "\n";
        return 1;
    }
    try {
        sv2::Socket listener = sv2::Socket::listen(port);
        std::cout << "listening 127.0.0.1:" << listener.local_port() << std::endl;
        for (long served = 0; connections == 0 || served < connections; served++) {
            sv2::Socket client = listener.accept(60000);
            if (!client) {
                std::cerr << "no client within 60 s\n";
                return 1;
            }
            try {
                serve(client, corrupt);
            } catch (const std::exception& e) {  // one bad client never stops the server
                std::cout << "! connection dropped: " << e.what() << std::endl;
            }
            std::cout << "- connection closed" << std::endl;
        }
    } catch (const std::exception& e) {
        std::cerr << "template_provider: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

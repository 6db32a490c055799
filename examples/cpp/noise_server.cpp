// noise_server.cpp: an SV2 template provider over Noise on 127.0.0.1, in C++.
//
// Generates an authority key and a static key, prints the authority public key in its
// base58check text form (what a pool puts in its config) and the port, then serves
// clients one after another: Noise handshake as the responder, then the messages of
// mini_tp.hpp, through the connection part of the C API.
//
//   noise_server [--port N] [--connections N]
#include "mini_tp.hpp"

#include <cstdlib>
#include <iostream>

namespace {

void serve(sv2::Socket client, const Sv2ResponderKeys& keys)
{
    sv2::Channel ch(std::move(client),
                    sv2::checked(sv2::Connection(sv2_connection_new_responder(&keys)),
                                 "sv2_connection_new_responder"));
    ch.handshake(10000);
    std::cout << "- handshake done" << std::endl;
    mini_tp::Session session;
    sv2::Received msg;
    while (ch.recv(msg, 10000)) {
        std::vector<Sv2Message> replies;
        std::string log;
        bool keep = session.on_message(*msg, replies, log);
        std::cout << "< " << log << "\n";
        for (const Sv2Message& r : replies) {
            ch.send(r);
            std::cout << "> " << mini_tp::name_of(r) << "\n";
        }
        std::cout.flush();
        if (!keep) return;
    }
}

}  // namespace

int main(int argc, char** argv)
{
    uint16_t port = 0;
    long connections = 0;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--port" && i + 1 < argc) port = static_cast<uint16_t>(std::atoi(argv[++i]));
        else if (a == "--connections" && i + 1 < argc) connections = std::atol(argv[++i]);
        else {
            std::cerr << "usage: noise_server [--port N] [--connections N]\n";
            return 2;
        }
    }
    try {
        Sv2Keypair authority, server;
        sv2::check(sv2_keypair_generate(&authority), "authority key");
        sv2::check(sv2_keypair_generate(&server), "static key");
        Sv2ResponderKeys keys{};
        std::memcpy(keys.static_secret, server.secret, 32);
        std::memcpy(keys.authority_secret, authority.secret, 32);
        keys.certificate = nullptr;  // issue one per connection, signed by the authority
        keys.validity = 3600;
        char text[SV2_AUTHORITY_PUBKEY_TEXT_SIZE];
        sv2::check(sv2_authority_pubkey_to_text(authority.pubkey, text, sizeof text), "to_text");

        sv2::Socket listener = sv2::Socket::listen(port);
        std::cout << "authority " << text << "\n";
        std::cout << "listening 127.0.0.1:" << listener.local_port() << std::endl;
        for (long served = 0; connections == 0 || served < connections; served++) {
            sv2::Socket client = listener.accept(60000);
            if (!client) {
                std::cerr << "no client within 60 s\n";
                return 1;
            }
            try {
                serve(std::move(client), keys);
            } catch (const std::exception& e) {
                std::cout << "! connection dropped: " << e.what() << std::endl;
            }
            std::cout << "- connection closed" << std::endl;
        }
    } catch (const std::exception& e) {
        std::cerr << "noise_server: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

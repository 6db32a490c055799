// noise_client.cpp: an SV2 template distribution client over Noise, in C++.
//
// Connects to a template provider on 127.0.0.1, verifies its certificate against the
// authority public key given in text form, then: SetupConnection -> Success,
// CoinbaseOutputConstraints -> NewTemplate + SetNewPrevHash, RequestTransactionData ->
// its answer. Prints every field it received as "key=value" lines (the Python peer
// compares them with what it sent) and exits 0 if the exchange followed the protocol.
//
//   noise_client --port N --authority KEY
#include "sv2pp.hpp"

#include <cstdlib>
#include <iostream>

namespace {

bool expect(sv2::Channel& ch, sv2::Received& msg, Sv2MsgType type, const char* name)
{
    if (!ch.recv(msg, 10000)) {
        std::cout << "! the server closed the connection, expected " << name << std::endl;
        return false;
    }
    if (msg->type != type) {
        std::cout << "! expected " << name << ", got message type " << msg->type << std::endl;
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv)
{
    uint16_t port = 0;
    std::string authority_text;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--port" && i + 1 < argc) port = static_cast<uint16_t>(std::atoi(argv[++i]));
        else if (a == "--authority" && i + 1 < argc) authority_text = argv[++i];
        else {
            std::cerr << "usage: noise_client --port N --authority KEY\n";
            return 2;
        }
    }
    try {
        uint8_t authority[32];
        sv2::check(sv2_authority_pubkey_from_text(authority_text.c_str(), authority),
                   "authority key");
        sv2::Channel ch(sv2::Socket::connect(port),
                        sv2::checked(sv2::Connection(sv2_connection_new_initiator(authority)),
                                     "sv2_connection_new_initiator"));
        ch.handshake(10000);
        uint8_t server_key[32];
        sv2::check(sv2_connection_remote_pubkey(ch.connection(), server_key), "remote key");
        std::cout << "handshake server_static=" << sv2::hex(server_key, 32) << "\n";

        std::string host = "127.0.0.1", vendor = "sv2ffi-cpp";
        Sv2Message setup{};
        setup.type = SV2_MSG_SETUP_CONNECTION;
        setup.setup_connection.protocol = SV2_PROTOCOL_TEMPLATE_DISTRIBUTION;
        setup.setup_connection.min_version = SV2_PROTOCOL_VERSION;
        setup.setup_connection.max_version = SV2_PROTOCOL_VERSION;
        setup.setup_connection.endpoint_host = sv2::view(host);
        setup.setup_connection.endpoint_port = port;
        setup.setup_connection.vendor = sv2::view(vendor);
        ch.send(setup);

        sv2::Received msg;
        if (!expect(ch, msg, SV2_MSG_SETUP_CONNECTION_SUCCESS, "SetupConnection.Success"))
            return 1;
        std::cout << "SetupConnection.Success used_version="
                  << msg->setup_connection_success.used_version << "\n";

        Sv2Message constraints{};
        constraints.type = SV2_MSG_COINBASE_OUTPUT_CONSTRAINTS;
        constraints.coinbase_output_constraints.coinbase_output_max_additional_size = 100;
        constraints.coinbase_output_constraints.coinbase_output_max_additional_sigops = 4;
        ch.send(constraints);

        if (!expect(ch, msg, SV2_MSG_NEW_TEMPLATE, "NewTemplate")) return 1;
        const Sv2NewTemplate& t = msg->new_template;
        uint64_t template_id = t.template_id;
        std::cout << "NewTemplate template_id=" << t.template_id
                  << " future_template=" << t.future_template << " version=" << t.version
                  << " coinbase_prefix=" << sv2::hex(t.coinbase_prefix.data, t.coinbase_prefix.len)
                  << " coinbase_tx_value_remaining=" << t.coinbase_tx_value_remaining
                  << " coinbase_tx_outputs=" << sv2::hex(t.coinbase_tx_outputs.data, t.coinbase_tx_outputs.len)
                  << " merkle_path_len=" << t.merkle_path.len;
        if (t.merkle_path.len)
            std::cout << " merkle_path_last=" << sv2::hex(t.merkle_path.elements[t.merkle_path.len - 1], 32);
        std::cout << "\n";

        if (!expect(ch, msg, SV2_MSG_SET_NEW_PREV_HASH, "SetNewPrevHash")) return 1;
        const Sv2SetNewPrevHash& p = msg->set_new_prev_hash;
        std::cout << "SetNewPrevHash template_id=" << p.template_id
                  << " prev_hash=" << sv2::hex(p.prev_hash, 32) << " n_bits=" << p.n_bits
                  << " target=" << sv2::hex(p.target, 32) << "\n";
        if (p.template_id != template_id) {
            std::cout << "! SetNewPrevHash names template " << p.template_id << ", not "
                      << template_id << std::endl;
            return 1;
        }

        Sv2Message request{};
        request.type = SV2_MSG_REQUEST_TRANSACTION_DATA;
        request.request_transaction_data.template_id = template_id;
        ch.send(request);
        if (!expect(ch, msg, SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS,
                    "RequestTransactionData.Success"))
            return 1;
        const Sv2BytesSeq& txs = msg->request_transaction_data_success.transaction_list;
        std::cout << "RequestTransactionData.Success transactions=" << txs.len;
        for (size_t i = 0; i < txs.len; i++) std::cout << " tx" << i << "_len=" << txs.elements[i].len;
        std::cout << std::endl;
    } catch (const std::exception& e) {
        std::cout << "! " << e.what() << std::endl;
        return 1;
    }
    return 0;
}

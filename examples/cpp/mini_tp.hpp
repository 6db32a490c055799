// mini_tp.hpp: the template-provider side of the examples, messages built in C++.
//
// Deliberately small and deterministic, so the Python peer (sv2ffi interop) can check
// every field: SetupConnection is answered per the spec (Success for protocol 2 with
// version 2 in [min, max]; otherwise SetupConnection.Error with unsupported-protocol or
// protocol-version-mismatch, then the connection closes), CoinbaseOutputConstraints with
// a future NewTemplate followed by the SetNewPrevHash that activates it,
// RequestTransactionData with the template's transactions (or template-id-not-found).
#pragma once

#include "sv2pp.hpp"

#include <array>
#include <cstdio>
#include <string>
#include <vector>

namespace mini_tp {

constexpr uint32_t kHeight = 840000;
constexpr uint64_t kValueRemaining = 312500000;  // 3.125 BTC: subsidy at that height
constexpr uint32_t kNBits = 0x1d00ffff;
constexpr uint32_t kTimestamp = 1700000000;

// nBits (compact) -> 256-bit target, little-endian as SetNewPrevHash.target carries it.
inline std::array<uint8_t, 32> target_from_bits(uint32_t bits)
{
    std::array<uint8_t, 32> t{};
    uint32_t mantissa = bits & 0x007fffff;
    int exponent = static_cast<int>(bits >> 24);
    for (int i = 0; i < 3; i++) {
        int pos = exponent - 3 + i;  // byte i of the mantissa lands at byte pos
        uint8_t byte = static_cast<uint8_t>(mantissa >> (8 * i));
        if (pos >= 0 && pos < 32) t[static_cast<size_t>(pos)] = byte;
    }
    return t;
}

inline const char* name_of(const Sv2Message& m)
{
    switch (m.type) {
    case SV2_MSG_SETUP_CONNECTION_SUCCESS: return "SetupConnection.Success";
    case SV2_MSG_SETUP_CONNECTION_ERROR: return "SetupConnection.Error";
    case SV2_MSG_NEW_TEMPLATE: return "NewTemplate";
    case SV2_MSG_SET_NEW_PREV_HASH: return "SetNewPrevHash";
    case SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS: return "RequestTransactionData.Success";
    case SV2_MSG_REQUEST_TRANSACTION_DATA_ERROR: return "RequestTransactionData.Error";
    default: return "message";
    }
}

class Session {
public:
    // Replies to one received message, appended to out (they point into this object,
    // which must outlive their encoding). Returns false when the connection must close.
    bool on_message(const Sv2Message& in, std::vector<Sv2Message>& out, std::string& log)
    {
        Sv2Message reply{};
        switch (in.type) {
        case SV2_MSG_SETUP_CONNECTION: {
            const Sv2SetupConnection& s = in.setup_connection;
            log = "SetupConnection protocol=" + std::to_string(s.protocol) +
                  " min_version=" + std::to_string(s.min_version) +
                  " max_version=" + std::to_string(s.max_version) +
                  " vendor=" + sv2::text(s.vendor);
            if (s.protocol != SV2_PROTOCOL_TEMPLATE_DISTRIBUTION) {
                out.push_back(error(SV2_ERROR_CODE_UNSUPPORTED_PROTOCOL));
                return false;
            }
            if (!(s.min_version <= SV2_PROTOCOL_VERSION && SV2_PROTOCOL_VERSION <= s.max_version)) {
                out.push_back(error(SV2_ERROR_CODE_PROTOCOL_VERSION_MISMATCH));
                return false;
            }
            reply.type = SV2_MSG_SETUP_CONNECTION_SUCCESS;
            reply.setup_connection_success.used_version = SV2_PROTOCOL_VERSION;
            reply.setup_connection_success.flags = 0;
            out.push_back(reply);
            setup_done_ = true;
            return true;
        }
        case SV2_MSG_COINBASE_OUTPUT_CONSTRAINTS: {
            const Sv2CoinbaseOutputConstraints& c = in.coinbase_output_constraints;
            log = "CoinbaseOutputConstraints size=" +
                  std::to_string(c.coinbase_output_max_additional_size) +
                  " sigops=" + std::to_string(c.coinbase_output_max_additional_sigops);
            if (!setup_done_) return false;
            build_template();
            out.push_back(new_template());
            out.push_back(set_new_prev_hash());
            return true;
        }
        case SV2_MSG_REQUEST_TRANSACTION_DATA: {
            uint64_t id = in.request_transaction_data.template_id;
            log = "RequestTransactionData template_id=" + std::to_string(id);
            if (id != template_id_ || !template_id_) {
                error_text_ = "template-id-not-found";
                reply.type = SV2_MSG_REQUEST_TRANSACTION_DATA_ERROR;
                reply.request_transaction_data_error.template_id = id;
                reply.request_transaction_data_error.error_code = sv2::view(error_text_);
            } else {
                reply.type = SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS;
                reply.request_transaction_data_success.template_id = id;
                reply.request_transaction_data_success.excess_data = sv2::view(excess_);
                reply.request_transaction_data_success.transaction_list.elements = tx_views_.data();
                reply.request_transaction_data_success.transaction_list.len = tx_views_.size();
            }
            out.push_back(reply);
            return true;
        }
        case SV2_MSG_SUBMIT_SOLUTION:
            log = "SubmitSolution template_id=" + std::to_string(in.submit_solution.template_id) +
                  " nonce=" + std::to_string(in.submit_solution.header_nonce);
            return true;
        default:
            log = "ignored message type " + std::to_string(in.type);
            return true;
        }
    }

    // Corrupts the next SetNewPrevHash's target: lets tests prove the peer's checks bite.
    void corrupt_target() { corrupt_ = true; }

private:
    bool setup_done_ = false;
    bool corrupt_ = false;
    uint64_t template_id_ = 0;
    std::string error_text_;
    std::vector<uint8_t> prefix_, outputs_, excess_;
    std::vector<std::array<uint8_t, 32>> path_;
    std::vector<std::vector<uint8_t>> txs_;
    std::vector<Sv2Bytes> tx_views_;

    Sv2Message error(const char* code)
    {
        error_text_ = code;
        Sv2Message m{};
        m.type = SV2_MSG_SETUP_CONNECTION_ERROR;
        m.setup_connection_error.flags = 0;
        m.setup_connection_error.error_code = sv2::view(error_text_);
        return m;
    }

    void build_template()
    {
        template_id_++;
        // BIP34: the block height as a minimal little-endian script push
        prefix_ = {3, static_cast<uint8_t>(kHeight), static_cast<uint8_t>(kHeight >> 8),
                   static_cast<uint8_t>(kHeight >> 16)};
        // one output: 0 sat, OP_RETURN witness commitment (aa21a9ed + 32 bytes)
        outputs_.assign(8, 0);
        const uint8_t head[] = {0x26, 0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed};
        outputs_.insert(outputs_.end(), head, head + sizeof head);
        outputs_.insert(outputs_.end(), 32, 0x5a);
        path_.assign(3, {});
        for (size_t i = 0; i < path_.size(); i++)
            for (size_t j = 0; j < 32; j++) path_[i][j] = static_cast<uint8_t>(i * 32 + j);
        excess_.assign(32, 0);
        txs_ = {std::vector<uint8_t>(100, 0x01), std::vector<uint8_t>(1000, 0x02)};
        tx_views_.clear();
        for (const auto& tx : txs_) tx_views_.push_back(sv2::view(tx));
    }

    Sv2Message new_template() const
    {
        Sv2Message m{};
        m.type = SV2_MSG_NEW_TEMPLATE;
        Sv2NewTemplate& t = m.new_template;
        t.template_id = template_id_;
        t.future_template = true;
        t.version = 0x20000000;
        t.coinbase_tx_version = 2;
        t.coinbase_prefix = sv2::view(prefix_);
        t.coinbase_tx_input_sequence = 0xffffffff;
        t.coinbase_tx_value_remaining = kValueRemaining;
        t.coinbase_tx_outputs_count = 1;
        t.coinbase_tx_outputs = sv2::view(outputs_);
        t.coinbase_tx_locktime = 0;
        t.merkle_path.elements = reinterpret_cast<const uint8_t(*)[32]>(path_.data());
        t.merkle_path.len = path_.size();
        return m;
    }

    Sv2Message set_new_prev_hash()
    {
        Sv2Message m{};
        m.type = SV2_MSG_SET_NEW_PREV_HASH;
        Sv2SetNewPrevHash& p = m.set_new_prev_hash;
        p.template_id = template_id_;
        for (size_t j = 0; j < 32; j++) p.prev_hash[j] = static_cast<uint8_t>(0xff - j);
        p.header_timestamp = kTimestamp;
        p.n_bits = kNBits;
        std::array<uint8_t, 32> target = target_from_bits(kNBits);
        if (corrupt_) target[0] ^= 1;
        std::memcpy(p.target, target.data(), 32);
        return m;
    }
};

}  // namespace mini_tp

// embedded_node.cpp: a small regtest "node" that embeds libsv2's template provider.
//
// What a Bitcoin Core fork does with libsv2, in miniature: the node keeps its own chain
// (Core's regtest genesis, its own premine, then blocks mined by SV2 clients), a UTXO set
// and a mempool; its block assembler builds a template the usual way (placeholder coinbase
// with the BIP34 height push, one reward output worth subsidy + fees, the BIP141 witness
// commitment, the mempool's transactions) and pushes it with sv2_tp_push_template. The
// library serves it to SV2 clients over Noise on its own thread; a solved block comes back
// through the solution callback, already written to DATADIR/solved-blocks. The callback
// only queues it: the node's main thread checks it (proof of work, merkle root, BIP34
// height, inputs, coinbase maturity, fees, coinbase value, witness commitment), connects
// it, and pushes the next template, a new tip.
//
// The chain is a real regtest chain, one Bitcoin Core would accept block for block: at
// start-up the node mines its first --premine blocks (default 110) on top of the regtest
// genesis, as `generatetoaddress` would: nBits 0x207fffff, BIP34 heights, the witness
// commitment, the regtest subsidy (halving every 150 blocks), strictly increasing
// timestamps one second apart ending a second before start-up. Every coinbase pays
// P2WSH(OP_TRUE). From height 101 on, each premine block also carries a wallet
// transaction that spends the coinbase of 100 blocks earlier (just mature) and splits it
// into 50 outputs; those outputs feed the mempool. Every transaction spends them or outputs
// of earlier transactions, P2WSH(OP_TRUE) with the witness [OP_TRUE], so what the node
// checks about them, and what Core would check, is real. Each premine block goes through
// the same checks as a solved one before it connects.
//
// DATADIR/premine.hex: the premine, written (atomically) before the node listens: one
// block per line, lowercase hex of the serialized block with witnesses, heights 1..N in
// order. Together with DATADIR/solved-blocks it lets a checker replay the whole chain
// through Bitcoin Core's validation (`sv2ffi interop` does, with libbitcoinkernel).
//
//   embedded_node [--datadir DIR] [--port N] [--blocks N] [--txs N] [--premine N]
//                 [--timeout S]
//
// Prints "premine ...", "authority KEY" and "listening 127.0.0.1:PORT", then one line per
// template, solution and block; exits 0 after accepting --blocks blocks, 1 on any invalid
// block or when no block arrives within --timeout seconds.
#include "mini_bitcoin.hpp"
#include "sv2.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using mb::Bytes;
using mb::Hash;

constexpr uint32_t kRegtestBits = 0x207fffff;  // regtest's proof-of-work limit, never retargeted
constexpr uint32_t kHalvingInterval = 150;      // regtest
constexpr uint32_t kCoinbaseMaturity = 100;     // confirmations before a coinbase is spendable
constexpr uint64_t kCoin = 100000000;
constexpr uint64_t kMaxBlockWeight = 4000000;
constexpr uint32_t kDefaultPremine = 110;  // 10 coinbases mature during the premine
constexpr uint32_t kMaxPremine = 1000;  // the subsidy, halved every 150 blocks, still splits
constexpr uint32_t kSplitOutputs = 50;     // outputs per split coinbase
constexpr uint64_t kSplitFee = 10000;      // sat, for a 1-in 50-out transaction

// ---- the solution callback: a library thread hands blocks to the node's thread ---------------

class SolutionQueue {
public:
    // Called by libsv2 on its solution thread. Copy and return: the node works on its own
    // thread, so the library is never held up by the node's validation, and no node lock
    // is taken here (sv2_tp_stop waits for a running callback).
    static void on_solution(void* user, const uint8_t* block, size_t len)
    {
        auto* q = static_cast<SolutionQueue*>(user);
        std::lock_guard<std::mutex> lock(q->mu_);
        q->blocks_.emplace_back(block, block + len);
        q->cv_.notify_one();
    }

    bool pop(Bytes& out, std::chrono::seconds timeout)
    {
        std::unique_lock<std::mutex> lock(mu_);
        if (!cv_.wait_for(lock, timeout, [this] { return !blocks_.empty(); })) return false;
        out = std::move(blocks_.front());
        blocks_.pop_front();
        return true;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Bytes> blocks_;
};

// ---- the node ------------------------------------------------------------------------------

struct Coin {
    uint64_t value;
    Bytes script;
    uint32_t height = 0;  // of the block that created it (unset for mempool outputs)
    bool coinbase = false;
};

struct MempoolTx {
    mb::Tx tx;
    Hash txid;
    uint64_t fee;
};

struct BlockIndex {
    Hash hash;
    uint32_t height;
    uint32_t time;
    Hash coinbase_txid;
};

class Node {
public:
    explicit Node(size_t txs_per_block) : txs_per_block_(txs_per_block)
    {
        // Bitcoin Core's regtest genesis header; its hash checks the SHA-256 code too
        mb::Header g;
        g.version = 1;
        g.merkle_root = from_display("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
        g.time = 1296688602;
        g.bits = kRegtestBits;
        g.nonce = 2;
        Hash h = g.hash();
        if (mb::show(h) != "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
            throw std::runtime_error("regtest genesis hash mismatch: SHA-256 is broken");
        // the genesis coinbase is not spendable (it is not in Core's UTXO set either)
        chain_.push_back({h, 0, g.time, Hash{}});
    }

    const BlockIndex& tip() const { return chain_.back(); }

    // The node's first blocks, mined on genesis before it serves anyone: `count` blocks,
    // the last one timestamped a second before `now`. Each goes through accept_block
    // like a solved block; from height 101 on, each also carries a wallet transaction
    // splitting the coinbase that just matured into kSplitOutputs outputs for the mempool.
    // Returns the serialized blocks, heights 1..count.
    std::vector<Bytes> premine(uint32_t count, uint32_t now)
    {
        std::vector<Bytes> out;
        for (uint32_t i = 1; i <= count; i++) {
            const uint32_t height = tip().height + 1;
            std::vector<MempoolTx> txs;
            if (height > kCoinbaseMaturity)
                txs.push_back(split_coinbase(chain_[height - kCoinbaseMaturity].coinbase_txid));
            mb::Block b = assemble(now - (count - i) - 1, txs);
            while (!mb::hash_meets_target(b.header.hash(), mb::bits_to_target(b.header.bits)))
                b.header.nonce++;  // about two tries at regtest difficulty
            Bytes raw = b.serialize();
            mb::Block parsed;
            std::string why = accept_block(raw, parsed);
            if (!why.empty())
                throw std::runtime_error("premine block " + std::to_string(height) +
                                         " fails the node's own checks: " + why);
            for (const MempoolTx& m : txs)
                for (uint32_t n = 0; n < m.tx.vout.size(); n++) spendable_.push_back({m.txid, n});
            out.push_back(std::move(raw));
        }
        return out;
    }

    size_t spendable() const { return spendable_.size(); }

    // a few new transactions, as if they had arrived from peers: every other one spends
    // a confirmed output, the next one an output of the transaction just made (a child)
    void add_transactions(size_t n)
    {
        for (size_t i = 0; i < n && !spendable_.empty(); i++) {
            bool child = counter_ % 2 == 1;
            mb::OutPoint op = child ? spendable_.back() : spendable_.front();
            if (child) spendable_.pop_back();
            else spendable_.pop_front();
            std::optional<Coin> coin = find_coin(op);
            uint64_t fee = 1000 + 150 * (counter_ % 17);
            counter_++;
            if (!coin || coin->value < fee + 2000) continue;
            mb::Tx tx;
            mb::TxIn in;
            in.prevout = op;
            in.sequence = 0xfffffffd;
            in.witness.push_back(mb::op_true_script());
            tx.vin.push_back(in);
            uint64_t rest = coin->value - fee;
            tx.vout.push_back({rest / 2, mb::p2wsh_op_true()});
            tx.vout.push_back({rest - rest / 2, mb::p2wsh_op_true()});
            tx.locktime = tip().height;
            Hash txid = tx.txid();
            mempool_.push_back({tx, txid, fee});
            spendable_.push_back({txid, 0});
            spendable_.push_back({txid, 1});
        }
    }

    // what a node's block assembler produces: the serialized block template
    Bytes build_template(uint32_t& height, size_t& ntx, uint64_t& fees) const
    {
        height = tip().height + 1;
        std::vector<MempoolTx> txs;
        fees = 0;
        for (const MempoolTx& m : mempool_) {  // block order: parents were added first
            if (txs.size() >= txs_per_block_) break;
            txs.push_back(m);
            fees += m.fee;
        }
        ntx = txs.size();
        uint32_t time = std::max<uint32_t>(median_time_past() + 1,
                                           static_cast<uint32_t>(std::time(nullptr)));
        return assemble(time, txs).serialize();
    }

    // a block on the tip with these transactions (in this order) and a coinbase paying
    // subsidy + their fees to P2WSH(OP_TRUE); nonce 0
    mb::Block assemble(uint32_t time, const std::vector<MempoolTx>& txs) const
    {
        const uint32_t height = tip().height + 1;
        mb::Block b;
        b.header.version = 0x20000000;
        b.header.prev = tip().hash;
        b.header.time = time;
        b.header.bits = kRegtestBits;
        uint64_t fees = 0;
        for (const MempoolTx& m : txs) fees += m.fee;
        mb::Tx cb;  // placeholder coinbase, as Core's CreateNewBlock makes it
        mb::TxIn in;
        in.prevout = {Hash{}, 0xffffffff};
        in.script_sig = mb::bip34_push(height);
        in.script_sig.push_back(0x00);  // OP_0, as Core appends
        in.sequence = 0xfffffffe;
        in.witness.push_back(Bytes(32, 0));  // witness reserved value
        cb.vin.push_back(in);
        cb.vout.push_back({subsidy(height) + fees, mb::p2wsh_op_true()});
        cb.locktime = height - 1;
        b.txs.push_back(cb);
        for (const MempoolTx& m : txs) b.txs.push_back(m.tx);
        b.txs[0].vout.push_back({0, mb::commitment_script(mb::witness_commitment(b.txs, Bytes(32, 0)))});
        b.header.merkle_root = mb::block_merkle_root(b.txs);
        return b;
    }

    // the node's own checks of a solved block; "" when it connects, else why not
    std::string accept_block(const Bytes& data, mb::Block& block)
    {
        try {
            block = mb::Block::parse(data.data(), data.size());
        } catch (const mb::DecodeError& e) {
            return std::string("does not parse: ") + e.what();
        }
        const mb::Header& h = block.header;
        const uint32_t height = tip().height + 1;
        if (h.prev != tip().hash) return "does not build on our tip " + mb::show(tip().hash);
        if (h.bits != kRegtestBits) return "wrong nBits";
        if (!mb::hash_meets_target(h.hash(), mb::bits_to_target(h.bits)))
            return "proof of work: hash " + mb::show(h.hash()) + " above the target";
        if (mb::block_merkle_root(block.txs) != h.merkle_root) return "merkle root mismatch";
        if (h.time <= median_time_past()) return "time is not after the median time past";
        if (h.time > std::time(nullptr) + 7200) return "time too far in the future";
        uint64_t weight = 0;
        for (const mb::Tx& tx : block.txs)
            weight += 3 * tx.serialize(false).size() + tx.serialize(true).size();
        if (weight > kMaxBlockWeight) return "block too heavy";

        const mb::Tx& cb = block.txs[0];
        if (!cb.is_coinbase()) return "first transaction is not a coinbase";
        Bytes want = mb::bip34_push(height);
        const Bytes& sig = cb.vin[0].script_sig;
        if (sig.size() < 2 || sig.size() > 100) return "coinbase scriptSig size out of range";
        if (!std::equal(want.begin(), want.end(), sig.begin()))
            return "coinbase does not start with the BIP34 height " + std::to_string(height);

        // inputs: every spend must exist and be unspent (earlier in this block counts)
        std::map<mb::OutPoint, Coin> created;
        std::set<mb::OutPoint> spent;
        uint64_t fees = 0;
        for (size_t i = 1; i < block.txs.size(); i++) {
            const mb::Tx& tx = block.txs[i];
            if (tx.is_coinbase()) return "a second coinbase";
            uint64_t in_value = 0, out_value = 0;
            for (const mb::TxIn& in : tx.vin) {
                if (!spent.insert(in.prevout).second) return "double spend in the block";
                const Coin* coin = find_confirmed(in.prevout);
                auto c = created.find(in.prevout);
                if (!coin && c == created.end())
                    return "tx " + mb::show(tx.txid()) + " spends a missing output";
                if (coin && coin->coinbase && height - coin->height < kCoinbaseMaturity)
                    return "tx " + mb::show(tx.txid()) + " spends the coinbase of height " +
                           std::to_string(coin->height) + " before it matured";
                in_value += coin ? coin->value : c->second.value;
            }
            Hash txid = tx.txid();
            for (uint32_t n = 0; n < tx.vout.size(); n++) {
                out_value += tx.vout[n].value;
                created[{txid, n}] = Coin{tx.vout[n].value, tx.vout[n].script, height, false};
            }
            if (out_value > in_value) return "tx " + mb::show(txid) + " spends more than it has";
            fees += in_value - out_value;
        }
        uint64_t claimed = 0;
        for (const mb::TxOut& o : cb.vout) claimed += o.value;
        if (claimed > subsidy(height) + fees)
            return "coinbase claims " + std::to_string(claimed) + " sat, allowed " +
                   std::to_string(subsidy(height) + fees);

        // BIP141: with witness data, the coinbase commits to it
        bool any_witness = false;
        for (size_t i = 1; i < block.txs.size(); i++) any_witness |= block.txs[i].has_witness();
        int idx = mb::find_commitment(cb);
        if (idx >= 0) {
            if (cb.vin[0].witness.size() != 1 || cb.vin[0].witness[0].size() != 32)
                return "coinbase witness must be the 32-byte reserved value";
            Hash c = mb::witness_commitment(block.txs, cb.vin[0].witness[0]);
            if (!std::equal(c.begin(), c.end(), cb.vout[idx].script.begin() + 6))
                return "witness commitment mismatch";
        } else if (any_witness) {
            return "witness data without a commitment";
        }

        // connect
        for (const mb::OutPoint& op : spent) utxo_.erase(op);
        for (auto& [op, coin] : created)
            if (!spent.count(op)) utxo_[op] = coin;
        Hash cb_txid = cb.txid();
        for (uint32_t n = 0; n < cb.vout.size(); n++)
            utxo_[{cb_txid, n}] = Coin{cb.vout[n].value, cb.vout[n].script, height, true};
        std::set<Hash> mined;
        for (const mb::Tx& tx : block.txs) mined.insert(tx.txid());
        std::vector<MempoolTx> keep;
        for (const MempoolTx& m : mempool_) {
            bool conflict = mined.count(m.txid) > 0;
            for (const mb::TxIn& in : m.tx.vin) conflict |= spent.count(in.prevout) > 0;
            if (!conflict) keep.push_back(m);
        }
        mempool_.swap(keep);
        chain_.push_back({h.hash(), height, h.time, cb_txid});
        last_fees_ = fees;
        return "";
    }

    uint64_t last_fees() const { return last_fees_; }
    size_t mempool_size() const { return mempool_.size(); }

    static uint64_t subsidy(uint32_t height)
    {
        uint32_t halvings = height / kHalvingInterval;
        return halvings >= 64 ? 0 : (50 * kCoin) >> halvings;
    }

private:
    static Hash from_display(const std::string& text)
    {
        Hash h{};
        for (size_t i = 0; i < 32; i++) h[31 - i] = uint8_t(std::stoi(text.substr(2 * i, 2), nullptr, 16));
        return h;
    }

    // the wallet spends a mature coinbase's reward output into kSplitOutputs equal outputs
    MempoolTx split_coinbase(const Hash& coinbase_txid) const
    {
        mb::OutPoint op{coinbase_txid, 0};
        const Coin* coin = find_confirmed(op);
        if (!coin || coin->value <= kSplitFee)
            throw std::runtime_error("premine: no coinbase output to split at " + mb::show(coinbase_txid));
        mb::Tx tx;
        mb::TxIn in;
        in.prevout = op;
        in.sequence = 0xfffffffd;
        in.witness.push_back(mb::op_true_script());
        tx.vin.push_back(in);
        uint64_t each = (coin->value - kSplitFee) / kSplitOutputs;
        for (uint32_t n = 0; n < kSplitOutputs; n++) tx.vout.push_back({each, mb::p2wsh_op_true()});
        tx.locktime = tip().height;
        return {tx, tx.txid(), coin->value - each * kSplitOutputs};
    }

    uint32_t median_time_past() const
    {
        std::vector<uint32_t> times;
        for (size_t i = chain_.size() > 11 ? chain_.size() - 11 : 0; i < chain_.size(); i++)
            times.push_back(chain_[i].time);
        std::sort(times.begin(), times.end());
        return times[times.size() / 2];
    }

    const Coin* find_confirmed(const mb::OutPoint& op) const
    {
        auto it = utxo_.find(op);
        return it == utxo_.end() ? nullptr : &it->second;
    }

    // confirmed, or created by a mempool transaction
    std::optional<Coin> find_coin(const mb::OutPoint& op) const
    {
        if (const Coin* c = find_confirmed(op)) return *c;
        for (const MempoolTx& m : mempool_)
            if (m.txid == op.txid && op.index < m.tx.vout.size())
                return Coin{m.tx.vout[op.index].value, m.tx.vout[op.index].script};
        return std::nullopt;
    }

    size_t txs_per_block_;
    std::vector<BlockIndex> chain_;
    std::map<mb::OutPoint, Coin> utxo_;
    std::deque<mb::OutPoint> spendable_;
    std::vector<MempoolTx> mempool_;
    uint64_t counter_ = 0;
    uint64_t last_fees_ = 0;
};

// ---- libsv2 ------------------------------------------------------------------------------------

struct TpFree {
    void operator()(Sv2Tp* tp) const { sv2_tp_free(tp); }
};
using Tp = std::unique_ptr<Sv2Tp, TpFree>;

[[noreturn]] void die(const std::string& what, Sv2Status st = SV2_ERR_INTERNAL)
{
    std::cerr << "embedded_node: " << what << ": " << sv2_status_name(st) << ": "
              << sv2_last_error() << std::endl;
    std::exit(1);
}

// DATADIR/premine.hex (format: this file's header comment), via a temporary file and a
// rename so a reader never sees half of it
std::string write_premine(const std::string& datadir, const std::vector<Bytes>& blocks)
{
    std::string path = datadir + "/premine.hex", tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        for (const Bytes& b : blocks) f << mb::hex(b) << '\n';
        f.flush();
        if (!f) throw std::runtime_error("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
    return path;
}

void push(Sv2Tp* tp, const Node& node)
{
    uint32_t height;
    size_t ntx;
    uint64_t fees;
    Bytes block = node.build_template(height, ntx, fees);
    Sv2Status st = sv2_tp_push_template(tp, block.data(), block.size());
    if (st != SV2_OK) die("sv2_tp_push_template", st);
    std::cout << "template height=" << height << " prev=" << mb::show(node.tip().hash).substr(0, 16)
              << " txs=" << ntx << " fees=" << fees << " reward=" << Node::subsidy(height) + fees
              << " bytes=" << block.size() << std::endl;
}

}  // namespace

int main(int argc, char** argv)
{
    std::string datadir = "embedded-node-data";
    unsigned port = 0;
    long want_blocks = 3, txs = 8, timeout = 60, premine = kDefaultPremine;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--datadir" && i + 1 < argc) datadir = argv[++i];
        else if (a == "--port" && i + 1 < argc) port = static_cast<unsigned>(std::atoi(argv[++i]));
        else if (a == "--blocks" && i + 1 < argc) want_blocks = std::atol(argv[++i]);
        else if (a == "--txs" && i + 1 < argc) txs = std::atol(argv[++i]);
        else if (a == "--timeout" && i + 1 < argc) timeout = std::atol(argv[++i]);
        else if (a == "--premine" && i + 1 < argc) premine = std::atol(argv[++i]);
        else {
            std::cerr << "usage: embedded_node [--datadir DIR] [--port N] [--blocks N] [--txs N] "
                         "[--premine N] [--timeout S]\n";
            return 2;
        }
    }
    if (premine <= static_cast<long>(kCoinbaseMaturity) || premine > static_cast<long>(kMaxPremine)) {
        std::cerr << "embedded_node: --premine must be " << kCoinbaseMaturity + 1 << ".." << kMaxPremine
                  << " (the wallet spends a coinbase once it has " << kCoinbaseMaturity
                  << " confirmations)\n";
        return 2;
    }
    std::string why;
    if (!mb::self_test(why)) {
        std::cerr << "embedded_node: self-test failed: " << why << std::endl;
        return 1;
    }
    if (sv2_abi_version() != SV2_ABI_VERSION) {
        std::cerr << "embedded_node: libsv2 ABI " << sv2_abi_version() << ", header "
                  << SV2_ABI_VERSION << std::endl;
        return 1;
    }
    Node node(static_cast<size_t>(txs));
    SolutionQueue solutions;
    ::mkdir(datadir.c_str(), 0700);
    try {
        auto t0 = std::chrono::steady_clock::now();
        std::vector<Bytes> blocks =
            node.premine(static_cast<uint32_t>(premine), static_cast<uint32_t>(std::time(nullptr)));
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::string path = write_premine(datadir, blocks);
        std::cout << "premine height=" << node.tip().height << " tip=" << mb::show(node.tip().hash)
                  << " spendable=" << node.spendable() << " ms=" << std::fixed << std::setprecision(1)
                  << ms << " file=" << path << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "embedded_node: " << e.what() << std::endl;
        return 1;
    }

    Sv2TpConfig cfg{};
    cfg.bind_address = "127.0.0.1";
    cfg.port = static_cast<uint16_t>(port);
    cfg.network = "regtest";
    cfg.datadir = datadir.c_str();
    cfg.fee_delta = 1000;
    cfg.template_interval_ms = 1000;
    cfg.on_solution = &SolutionQueue::on_solution;
    cfg.user = &solutions;
    Tp tp(sv2_tp_new(&cfg));
    if (!tp) die("sv2_tp_new");
    char key[SV2_AUTHORITY_PUBKEY_TEXT_SIZE];
    Sv2Status st = sv2_tp_authority_pubkey(tp.get(), key, sizeof key);
    if (st != SV2_OK) die("sv2_tp_authority_pubkey", st);
    node.add_transactions(static_cast<size_t>(txs));
    push(tp.get(), node);  // before start: served as soon as clients connect
    st = sv2_tp_start(tp.get());
    if (st != SV2_OK) die("sv2_tp_start", st);
    std::cout << "authority " << key << "\nlistening 127.0.0.1:" << sv2_tp_port(tp.get())
              << std::endl;

    long accepted = 0;
    int rejected = 0;
    while (accepted < want_blocks) {
        Bytes data;
        if (!solutions.pop(data, std::chrono::seconds(timeout))) {
            std::cout << "no solved block within " << timeout << " s" << std::endl;
            return 1;
        }
        mb::Block block;
        std::string reason = node.accept_block(data, block);
        Hash hash = block.header.hash();
        std::cout << "solution " << data.size() << " bytes, block " << mb::show(hash) << std::endl;
        if (!reason.empty()) {
            std::cout << "rejected block " << mb::show(hash) << ": " << reason << std::endl;
            rejected++;
            if (reason.rfind("does not build on our tip", 0) == 0) continue;  // stale: harmless
            return 1;
        }
        accepted++;
        std::cout << "accepted block height=" << node.tip().height << " hash=" << mb::show(hash)
                  << " txs=" << block.txs.size() - 1 << " fees=" << node.last_fees()
                  << " pow=ok merkle=ok" << std::endl;
        // new transactions arrived meanwhile; the next template is a new tip
        node.add_transactions(static_cast<size_t>(txs));
        push(tp.get(), node);
    }
    st = sv2_tp_stop(tp.get());
    if (st != SV2_OK) die("sv2_tp_stop", st);
    tp.reset();
    std::cout << "done: " << accepted << " blocks accepted, " << rejected
              << " stale, chain height " << node.tip().height << ", mempool "
              << node.mempool_size() << std::endl;
    return 0;
}

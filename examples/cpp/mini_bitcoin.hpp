// mini_bitcoin.hpp: the consensus bits embedded_node.cpp needs, in plain C++17.
//
// SHA-256 (FIPS 180-4; the round constants are computed from the primes at start-up
// and the whole thing is checked against known digests by self_test()), transaction and
// block serialization with BIP144 witnesses, txid/wtxid, merkle roots, the BIP141
// witness commitment, BIP34 height pushes and nBits targets. Enough for a small node to
// build block templates and to check the blocks that come back; not a validation engine.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace mb {

using Bytes = std::vector<uint8_t>;
using Hash = std::array<uint8_t, 32>;

// ---- SHA-256 ----------------------------------------------------------------------------

class Sha256 {
public:
    Sha256() { reset(); }

    void reset()
    {
        const auto& c = constants();
        std::memcpy(h_, c.init, sizeof h_);
        used_ = 0;
        total_ = 0;
    }

    Sha256& update(const uint8_t* p, size_t n)
    {
        total_ += n;
        while (n > 0) {
            size_t take = std::min(n, sizeof block_ - used_);
            std::memcpy(block_ + used_, p, take);
            used_ += take;
            p += take;
            n -= take;
            if (used_ == sizeof block_) {
                compress(block_);
                used_ = 0;
            }
        }
        return *this;
    }
    Sha256& update(const Bytes& b) { return update(b.data(), b.size()); }

    Hash digest()
    {
        uint64_t bits = total_ * 8;
        uint8_t pad = 0x80;
        update(&pad, 1);
        pad = 0;
        while (used_ != 56) update(&pad, 1);
        uint8_t len[8];
        for (int i = 0; i < 8; i++) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
        update(len, 8);
        Hash out;
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 4; j++) out[4 * i + j] = static_cast<uint8_t>(h_[i] >> (24 - 8 * j));
        reset();
        return out;
    }

private:
    struct Constants {
        uint32_t init[8];
        uint32_t k[64];
    };

    // H0: first 32 bits of the fractional parts of the square roots of the first 8 primes;
    // K: the same of the cube roots of the first 64 primes (FIPS 180-4, 4.2.2 and 5.3.3)
    static const Constants& constants()
    {
        static const Constants c = [] {
            Constants out{};
            int found = 0;
            for (int n = 2; found < 64; n++) {
                bool prime = true;
                for (int d = 2; d * d <= n; d++)
                    if (n % d == 0) prime = false;
                if (!prime) continue;
                long double cube = std::cbrt(static_cast<long double>(n));
                out.k[found] = frac32(cube);
                if (found < 8) out.init[found] = frac32(std::sqrt(static_cast<long double>(n)));
                found++;
            }
            return out;
        }();
        return c;
    }

    static uint32_t frac32(long double x)
    {
        long double f = x - std::floor(x);
        return static_cast<uint32_t>(std::ldexp(f, 32));
    }

    static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

    void compress(const uint8_t* chunk)
    {
        const uint32_t* k = constants().k;
        uint32_t w[64];
        for (int i = 0; i < 16; i++)
            w[i] = uint32_t(chunk[4 * i]) << 24 | uint32_t(chunk[4 * i + 1]) << 16 |
                   uint32_t(chunk[4 * i + 2]) << 8 | uint32_t(chunk[4 * i + 3]);
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6],
                 h = h_[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                          k[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d;
        h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
    }

    uint32_t h_[8];
    uint8_t block_[64];
    size_t used_;
    uint64_t total_;
};

inline Hash sha256(const uint8_t* p, size_t n) { return Sha256().update(p, n).digest(); }
inline Hash sha256(const Bytes& b) { return sha256(b.data(), b.size()); }
inline Hash sha256d(const uint8_t* p, size_t n)
{
    Hash once = sha256(p, n);
    return sha256(once.data(), once.size());
}
inline Hash sha256d(const Bytes& b) { return sha256d(b.data(), b.size()); }

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
inline std::string hex(const Bytes& b) { return hex(b.data(), b.size()); }
// hashes are shown the way Bitcoin shows them: byte-reversed
inline std::string show(const Hash& h)
{
    Hash r;
    for (size_t i = 0; i < 32; i++) r[i] = h[31 - i];
    return hex(r.data(), r.size());
}

// ---- serialization -------------------------------------------------------------------------

struct DecodeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Writer {
public:
    Bytes out;
    void u8(uint8_t v) { out.push_back(v); }
    void u32(uint32_t v) { for (int i = 0; i < 4; i++) out.push_back(uint8_t(v >> (8 * i))); }
    void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
    void u64(uint64_t v) { for (int i = 0; i < 8; i++) out.push_back(uint8_t(v >> (8 * i))); }
    void raw(const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); }
    void raw(const Bytes& b) { raw(b.data(), b.size()); }
    void hash(const Hash& h) { raw(h.data(), h.size()); }
    void compact(uint64_t n)
    {
        if (n < 0xfd) {
            u8(uint8_t(n));
        } else if (n <= 0xffff) {
            u8(0xfd);
            u8(uint8_t(n));
            u8(uint8_t(n >> 8));
        } else if (n <= 0xffffffffu) {
            u8(0xfe);
            u32(uint32_t(n));
        } else {
            u8(0xff);
            u64(n);
        }
    }
    void var(const Bytes& b)
    {
        compact(b.size());
        raw(b);
    }
};

class Reader {
public:
    Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
    size_t left() const { return n_ - pos_; }
    const uint8_t* take(size_t n)
    {
        if (n > left())
            throw DecodeError("truncated: needs " + std::to_string(n) + " bytes at offset " +
                              std::to_string(pos_));
        const uint8_t* at = p_ + pos_;
        pos_ += n;
        return at;
    }
    uint8_t u8() { return *take(1); }
    uint32_t u32()
    {
        const uint8_t* b = take(4);
        return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    }
    uint64_t u64()
    {
        uint64_t lo = u32();
        return lo | uint64_t(u32()) << 32;
    }
    Hash hash()
    {
        Hash h;
        std::memcpy(h.data(), take(32), 32);
        return h;
    }
    uint64_t compact(uint64_t limit = 4000000)
    {
        uint8_t first = u8();
        uint64_t n = first < 0xfd ? first : first == 0xfd ? (uint64_t(u8()) | uint64_t(u8()) << 8)
                                   : first == 0xfe ? u32() : u64();
        if (n > limit) throw DecodeError("size " + std::to_string(n) + " out of range");
        return n;
    }
    Bytes var()
    {
        size_t n = compact();
        const uint8_t* b = take(n);
        return Bytes(b, b + n);
    }

private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
};

// ---- transactions and blocks -------------------------------------------------------------------

struct OutPoint {
    Hash txid{};
    uint32_t index = 0;
    bool operator<(const OutPoint& o) const
    {
        return txid != o.txid ? txid < o.txid : index < o.index;
    }
    bool operator==(const OutPoint& o) const { return txid == o.txid && index == o.index; }
};

struct TxIn {
    OutPoint prevout;
    Bytes script_sig;
    uint32_t sequence = 0xffffffff;
    std::vector<Bytes> witness;
};

struct TxOut {
    uint64_t value = 0;
    Bytes script;
};

struct Tx {
    int32_t version = 2;
    std::vector<TxIn> vin;
    std::vector<TxOut> vout;
    uint32_t locktime = 0;

    bool has_witness() const
    {
        for (const TxIn& in : vin)
            if (!in.witness.empty()) return true;
        return false;
    }
    bool is_coinbase() const
    {
        return vin.size() == 1 && vin[0].prevout.index == 0xffffffff &&
               vin[0].prevout.txid == Hash{};
    }

    void write(Writer& w, bool with_witness) const
    {
        bool segwit = with_witness && has_witness();
        w.i32(version);
        if (segwit) {
            w.u8(0);  // marker
            w.u8(1);  // flag
        }
        w.compact(vin.size());
        for (const TxIn& in : vin) {
            w.hash(in.prevout.txid);
            w.u32(in.prevout.index);
            w.var(in.script_sig);
            w.u32(in.sequence);
        }
        w.compact(vout.size());
        for (const TxOut& out : vout) {
            w.u64(out.value);
            w.var(out.script);
        }
        if (segwit)
            for (const TxIn& in : vin) {
                w.compact(in.witness.size());
                for (const Bytes& item : in.witness) w.var(item);
            }
        w.u32(locktime);
    }
    Bytes serialize(bool with_witness = true) const
    {
        Writer w;
        write(w, with_witness);
        return w.out;
    }
    Hash txid() const { return sha256d(serialize(false)); }
    Hash wtxid() const { return sha256d(serialize(true)); }

    static Tx read(Reader& r)
    {
        Tx tx;
        tx.version = static_cast<int32_t>(r.u32());
        uint64_t n_in = r.compact();
        bool segwit = false;
        if (n_in == 0) {  // BIP144 marker, then the flag
            if (r.u8() != 1) throw DecodeError("bad segwit flag");
            segwit = true;
            n_in = r.compact();
        }
        for (uint64_t i = 0; i < n_in; i++) {
            TxIn in;
            in.prevout.txid = r.hash();
            in.prevout.index = r.u32();
            in.script_sig = r.var();
            in.sequence = r.u32();
            tx.vin.push_back(std::move(in));
        }
        uint64_t n_out = r.compact();
        for (uint64_t i = 0; i < n_out; i++) {
            TxOut out;
            out.value = r.u64();
            out.script = r.var();
            tx.vout.push_back(std::move(out));
        }
        if (segwit) {
            for (TxIn& in : tx.vin) {
                uint64_t items = r.compact();
                for (uint64_t i = 0; i < items; i++) in.witness.push_back(r.var());
            }
            if (!tx.has_witness()) throw DecodeError("segwit marker without witness data");
        }
        tx.locktime = r.u32();
        return tx;
    }
};

struct Header {
    int32_t version = 0x20000000;
    Hash prev{};
    Hash merkle_root{};
    uint32_t time = 0;
    uint32_t bits = 0;
    uint32_t nonce = 0;

    Bytes serialize() const
    {
        Writer w;
        w.i32(version);
        w.hash(prev);
        w.hash(merkle_root);
        w.u32(time);
        w.u32(bits);
        w.u32(nonce);
        return w.out;
    }
    Hash hash() const { return sha256d(serialize()); }
    static Header read(Reader& r)
    {
        Header h;
        h.version = static_cast<int32_t>(r.u32());
        h.prev = r.hash();
        h.merkle_root = r.hash();
        h.time = r.u32();
        h.bits = r.u32();
        h.nonce = r.u32();
        return h;
    }
};

struct Block {
    Header header;
    std::vector<Tx> txs;

    Bytes serialize() const
    {
        Writer w;
        w.raw(header.serialize());
        w.compact(txs.size());
        for (const Tx& tx : txs) tx.write(w, true);
        return w.out;
    }
    static Block parse(const uint8_t* p, size_t n)
    {
        Reader r(p, n);
        Block b;
        b.header = Header::read(r);
        uint64_t count = r.compact(1000000);
        if (count == 0) throw DecodeError("a block without transactions");
        for (uint64_t i = 0; i < count; i++) b.txs.push_back(Tx::read(r));
        if (r.left()) throw DecodeError(std::to_string(r.left()) + " bytes after the last tx");
        return b;
    }
};

// ---- merkle trees, commitments, targets, scripts ------------------------------------------

inline Hash merkle_root(std::vector<Hash> level)
{
    if (level.empty()) return Hash{};
    while (level.size() > 1) {
        if (level.size() % 2) level.push_back(level.back());
        std::vector<Hash> up;
        for (size_t i = 0; i < level.size(); i += 2) {
            uint8_t pair[64];
            std::memcpy(pair, level[i].data(), 32);
            std::memcpy(pair + 32, level[i + 1].data(), 32);
            up.push_back(sha256d(pair, 64));
        }
        level.swap(up);
    }
    return level[0];
}

inline Hash block_merkle_root(const std::vector<Tx>& txs)
{
    std::vector<Hash> ids;
    for (const Tx& tx : txs) ids.push_back(tx.txid());
    return merkle_root(ids);
}

const uint8_t kCommitmentTag[4] = {0xaa, 0x21, 0xa9, 0xed};  // BIP141

// SHA256d(witness merkle root || witness reserved value); the coinbase counts as wtxid 0
inline Hash witness_commitment(const std::vector<Tx>& txs, const Bytes& reserved)
{
    std::vector<Hash> ids{Hash{}};
    for (size_t i = 1; i < txs.size(); i++) ids.push_back(txs[i].wtxid());
    Hash root = merkle_root(ids);
    Bytes data(root.begin(), root.end());
    data.insert(data.end(), reserved.begin(), reserved.end());
    return sha256d(data);
}

inline Bytes commitment_script(const Hash& commitment)
{
    Bytes s(38);
    s[0] = 0x6a;  // OP_RETURN
    s[1] = 0x24;  // push 36 bytes
    std::memcpy(s.data() + 2, kCommitmentTag, 4);
    std::memcpy(s.data() + 6, commitment.data(), 32);
    return s;
}

// index of the last output carrying a witness commitment, or -1 (BIP141: the last one counts)
inline int find_commitment(const Tx& coinbase)
{
    int found = -1;
    for (size_t i = 0; i < coinbase.vout.size(); i++) {
        const Bytes& s = coinbase.vout[i].script;
        if (s.size() >= 38 && s[0] == 0x6a && s[1] == 0x24 &&
            std::memcmp(s.data() + 2, kCommitmentTag, 4) == 0)
            found = static_cast<int>(i);
    }
    return found;
}

// CScript() << height: OP_1..OP_16 for small heights, else a minimal little-endian push
inline Bytes bip34_push(uint32_t height)
{
    if (height == 0) return Bytes{0x00};
    if (height <= 16) return Bytes{static_cast<uint8_t>(0x50 + height)};
    Bytes num;
    for (uint32_t h = height; h; h >>= 8) num.push_back(uint8_t(h));
    if (num.back() & 0x80) num.push_back(0);
    Bytes out{static_cast<uint8_t>(num.size())};
    out.insert(out.end(), num.begin(), num.end());
    return out;
}

// target of a compact nBits, as 32 little-endian bytes (the byte order of a header hash)
inline Hash bits_to_target(uint32_t bits)
{
    Hash t{};
    uint32_t mantissa = bits & 0x007fffff;
    int exponent = int(bits >> 24);
    if (bits & 0x00800000) throw DecodeError("negative nBits");
    for (int i = 0; i < 3; i++) {
        int pos = exponent - 3 + i;
        uint8_t byte = uint8_t(mantissa >> (8 * i));
        if (pos >= 0 && pos < 32) t[pos] = byte;
        else if (pos >= 32 && byte) throw DecodeError("nBits overflows 256 bits");
    }
    return t;
}

inline bool hash_meets_target(const Hash& h, const Hash& target)
{
    for (int i = 31; i >= 0; i--)
        if (h[i] != target[i]) return h[i] < target[i];
    return true;
}

// P2WSH of the one-byte script OP_TRUE: anyone can spend it with the witness {OP_TRUE}
inline Bytes op_true_script() { return Bytes{0x51}; }
inline Bytes p2wsh_op_true()
{
    Hash h = sha256(op_true_script());
    Bytes s(34);
    s[0] = 0x00;  // witness version 0
    s[1] = 0x20;  // push 32 bytes
    std::memcpy(s.data() + 2, h.data(), 32);
    return s;
}

// SHA-256 against the "abc" and two-block examples of FIPS 180-2 (embedded_node also
// checks the regtest genesis block hash)
inline bool self_test(std::string& why)
{
    const std::string abc = "abc";
    const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    if (hex(sha256(reinterpret_cast<const uint8_t*>(abc.data()), abc.size()).data(), 32) !=
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") {
        why = "SHA-256(\"abc\") is wrong";
        return false;
    }
    if (hex(sha256(reinterpret_cast<const uint8_t*>(two.data()), two.size()).data(), 32) !=
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") {
        why = "SHA-256 of the two-block message is wrong";
        return false;
    }
    return true;
}

}  // namespace mb

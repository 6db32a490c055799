/* sv2ffi._gbtscan: a getblocktemplate reply read in C, its merkle trees included.
 *
 * Why this exists: with 3,000 transactions bitcoind's getblocktemplate reply is 1.5 MB
 * of JSON.  Decoding it with the json module (10 ms), walking the decoded dicts in
 * parse_gbt (10 ms warm) and hashing the two merkle trees (3 ms) all held the interpreter
 * between the node's last byte and the clients' NewTemplate, where issue 10 allows the
 * node's own getblocktemplate time plus 5 ms.  Here the reply is scanned once, in the
 * thread that read it (a poll's pool thread; the event loop for a new tip's template),
 * with the interpreter released for the scan and the trees (on a machine of four CPUs or
 * more, from 256 transactions, the trees are hashed on a helper thread meanwhile:
 * HELPER_MIN_CPUS); what is left for Python is one tuple per transaction.
 *
 *   scan(reply: bytes | bytearray, refs: dict | None = None, helper: bool | None = None,
 *        memo: capsule | None = None, memo_txs: list | None = None,
 *        ahead: capsule | None = None)
 *       -> (fields, txs, merkle_path, witness_root, totals, matched, memo) or None
 *
 * ``reply`` is the whole JSON-RPC reply ({"result": {...}, "error": null, "id": ...}).
 * ``fields``: the result's members this TP reads (height, version, curtime, mintime,
 * coinbasevalue as int; previousblockhash, bits, longpollid as str), those present.
 * ``txs``: per transaction (txid, wtxid, fee, sigops, weight, parents, data): hashes in
 * internal byte order (the JSON's reversed hex read back), ``parents`` the 0-based
 * positions its ``depends`` name (each earlier than itself), ``sigops`` 0 when absent,
 * ``data`` its bytes (the hex decoded).
 * ``merkle_path``: the coinbase leaf's siblings over the txids (as
 * bitcoin.coinbase_merkle_path); ``witness_root``: the merkle root of the wtxids with the
 * coinbase's as 32 zero bytes (as bitcoin.witness_commitment hashes it), or None when
 * the result has a ``default_witness_commitment`` of the form Core writes (OP_RETURN,
 * 0x24, aa21a9ed, 32 bytes; in ``fields`` then): bitcoind's commitment to these very
 * wtxids, which the caller uses instead of hashing a second tree; ``totals``:
 * (weight, sigops, fee) summed over the transactions.  ``refs``: a TxInterner's table
 * (wtxid -> weak reference to a live TemplateTx); each transaction is matched against it
 * as TxInterner.find decides (same fee, sigops and parents), and ``matched`` is then
 * (held, misses): ``held`` the template's transactions with the live objects in place
 * and None at the indices ``misses`` lists, whose rows (the only ones made; None in
 * ``txs`` for the others) the caller turns into new objects.  ``matched`` is None without
 * ``refs``, when two transactions share a wtxid, or when a live object has another txid or
 * weight than the reply gives (a node contradicting itself): the caller then matches
 * every row itself.  For 3,000 held transactions this costs 1 ms with the interpreter
 * held, against 2.5 for making the rows and matching them in Python.  ``helper``: True
 * hashes the trees on a helper thread whatever the size and the machine, False on the
 * calling thread; None (the TP's way) decides as HELPER_MIN_CPUS says.  Same result.
 * ``memo`` (with ``refs``, when matched): this scan's transactions kept for the next scan
 * (a capsule; else None).  Passed back with ``memo_txs``, the template's transactions in
 * the order of that scan's rows, a row whose wtxid the memo has is matched against the
 * memo's values in C instead of the held object's attributes: the same decision while
 * ``refs`` maps each of those wtxids to that object, which the caller must see to
 * (sources/gbt.py: nothing added to the interner since; TxInterner.generation).  It
 * spares the scan 3,000 scattered objects' reads after each block (MEMO_SAVES).
 *
 *   ahead(reply: bytes | bytearray, state, got: int) -> state
 *
 * A reply still arriving (its buffer of its whole length, ``got`` bytes in so far): the
 * transactions array's whole items read as far as those bytes go, ``state`` None at
 * first and then what the last call returned; ``scan(..., ahead=state)`` on the same
 * buffer takes those items over (see "reading ahead" below).  Never raises for the
 * reply's content.
 *
 * None means "not the common, well-formed shape": an error reply, a member of an
 * unexpected type, a duplicate member, an escaped string, a number that is not a plain
 * integer of at most 64 bits, a hash that is not 64 hex digits, odd or non-hex
 * transaction data, a missing fee or weight, a forward ``depends``, nesting deeper than
 * 64.  The caller then decodes the reply with the json module and the Python reader
 * (sv2ffi/tp/sources/gbt.py), which says precisely what is wrong, or accepts what this
 * scanner is too strict for: this module only ever takes the fast road or declines.
 * Never raises for the reply's content (MemoryError aside).  Reference and fuzzing:
 * tests/test_gbt_scan.py. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpus.h"
#include "sha256d.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <pthread.h>
#include <structmember.h> /* T_OBJECT_EX, READ_RESTRICTED: slots read in place */

#define MAX_DEPTH 64

typedef struct {
    const unsigned char *p, *end;
} js_t;

typedef struct {
    unsigned char txid[32], wtxid[32];
    int64_t fee, sigops, weight;
    size_t data_off, data_len;
    size_t dep_start, dep_count;
} tx_t;

typedef struct {
    const unsigned char *s;
    size_t n;
} span_t;

/* the result members read, in this order in ``fields`` */
enum { F_HEIGHT, F_VERSION, F_CURTIME, F_MINTIME, F_COINBASEVALUE, F_INT_COUNT };
enum { F_PREV, F_BITS, F_LPID, F_COMMITMENT, F_STR_COUNT };
static const char *const INT_NAMES[F_INT_COUNT] = {"height", "version", "curtime", "mintime",
                                                  "coinbasevalue"};
static const char *const STR_NAMES[F_STR_COUNT] = {"previousblockhash", "bits", "longpollid",
                                                   "default_witness_commitment"};

typedef struct {
    const unsigned char *base;
    int64_t ints[F_INT_COUNT];
    int have_int[F_INT_COUNT];
    span_t strs[F_STR_COUNT];
    int have_str[F_STR_COUNT];
    tx_t *txs;
    size_t ntx, cap_tx;
    uint32_t *deps;
    size_t ndep, cap_dep;
    int have_txs;
    unsigned char *path; /* merkle path nodes, 32 bytes each */
    size_t npath;
    unsigned char root[32];
    int node_commitment; /* the result's default_witness_commitment will do: no root */
    int64_t sum_weight, sum_sigops, sum_fee;
    int dup; /* two transactions share a wtxid */
    int oom;
    int trees_rc;
    /* the trees' helper thread (HELPER_MIN_CPUS), while it may still run */
    pthread_t helper;
    int helping;
    /* transactions read while the reply arrived (ahead()), taken over at "transactions" */
    struct ahead_s *ahead;
} scan_t;

static void ws(js_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int eat(js_t *j, unsigned char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* hex digit values, -1 for anything else */
static signed char HEX[256];

static void hex_table(void)
{
    memset(HEX, -1, sizeof HEX);
    for (int i = 0; i < 10; i++)
        HEX['0' + i] = (signed char)i;
    for (int i = 0; i < 6; i++)
        HEX['a' + i] = HEX['A' + i] = (signed char)(10 + i);
}

static int hexval(unsigned char c)
{
    return HEX[c];
}

/* A hex digit's value, *bad set when ``c`` is none: without branches or tables, so the
 * loops below vectorise (a transaction's hex is most of the reply's bytes). */
static inline unsigned char nibble(unsigned char c, unsigned *bad)
{
    unsigned char digit = (unsigned char)(c - '0'), letter = (unsigned char)((c | 0x20) - 'a');
    *bad |= (unsigned)((digit > 9) & (letter > 5));
    return digit > 9 ? (unsigned char)(letter + 10) : digit;
}

/* Whether n bytes are all hex digits. */
static int all_hex_digits(const unsigned char *p, size_t n)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++)
        (void)nibble(p[i], &bad);
    return bad == 0;
}

/* A string that must be hex (a transaction's bytes): its end found with memchr, its
 * content checked in one pass.  A backslash or any other character fails the check,
 * so an escaped string is declined, never misread. */
static int hex_string(js_t *j, span_t *out)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return -1;
    const unsigned char *s = j->p + 1;
    const unsigned char *q = memchr(s, '"', (size_t)(j->end - s));
    if (q == NULL || ((q - s) & 1) || !all_hex_digits(s, (size_t)(q - s)))
        return -1;
    out->s = s;
    out->n = (size_t)(q - s);
    j->p = q + 1;
    return 0;
}

/* A string at j->p (after whitespace): its raw content's span; *escaped set when it holds
 * a backslash (then the span is not its value). */
static int string_span(js_t *j, span_t *out, int *escaped)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return -1;
    const unsigned char *s = ++j->p;
    *escaped = 0;
    while (j->p < j->end) {
#ifdef __SSE2__
        /* 16 bytes at a time to the first that needs a look: a quote, a backslash, a
         * control character or a byte >= 0x80 (both of the last: below 0x20 as signed
         * bytes).  Most strings here are 64-digit hashes: 4 steps instead of 64. */
        while (j->end - j->p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)j->p);
            int hit = _mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))));
            if (hit) {
                j->p += __builtin_ctz((unsigned)hit);
                break;
            }
            j->p += 16;
        }
        if (j->p >= j->end)
            break;
#endif
        unsigned char c = *j->p;
        if (c == '"') {
            out->s = s;
            out->n = (size_t)(j->p - s);
            j->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c >= 0x80)
            return -1; /* bitcoind's JSON is ASCII: leave any other encoding to json */
        if (c == '\\') {
            *escaped = 1;
            if (j->end - j->p < 2)
                return -1;
            unsigned char e = j->p[1];
            if (e == 'u') {
                if (j->end - j->p < 6)
                    return -1;
                for (int i = 2; i < 6; i++)
                    if (hexval(j->p[i]) < 0)
                        return -1;
                j->p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0)
                return -1;
            j->p += 2;
            continue;
        }
        j->p++;
    }
    return -1;
}

static int plain_string(js_t *j, span_t *out)
{
    int escaped;
    return string_span(j, out, &escaped) == 0 && !escaped ? 0 : -1;
}

/* A JSON number that is a plain integer fitting int64 (no fraction, no exponent). */
static int integer(js_t *j, int64_t *out)
{
    ws(j);
    int neg = 0;
    if (j->p < j->end && *j->p == '-') {
        neg = 1;
        j->p++;
    }
    const unsigned char *start = j->p;
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = *j->p - '0';
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        j->p++;
    }
    size_t n = (size_t)(j->p - start);
    if (n == 0 || (n > 1 && *start == '0'))
        return -1;
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return -1;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int literal(js_t *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return -1;
    j->p += n;
    return 0;
}

static int digits(js_t *j)
{
    const unsigned char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start ? 0 : -1;
}

/* Any JSON number, by the grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(js_t *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (digits(j) != 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (digits(j) != 0)
            return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (digits(j) != 0)
            return -1;
    }
    return 0;
}

/* Any JSON value, skipped (checked enough to find its end). */
static int skip_value(js_t *j, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    ws(j);
    if (j->p >= j->end)
        return -1;
    unsigned char c = *j->p;
    if (c == '"') {
        span_t s;
        int escaped;
        return string_span(j, &s, &escaped);
    }
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        j->p++;
        if (eat(j, close))
            return 0;
        for (;;) {
            if (c == '{') {
                span_t k;
                int escaped;
                if (string_span(j, &k, &escaped) != 0 || !eat(j, ':'))
                    return -1;
            }
            if (skip_value(j, depth + 1) != 0)
                return -1;
            if (eat(j, ','))
                continue;
            return eat(j, close) ? 0 : -1;
        }
    }
    if (c == 't')
        return literal(j, "true");
    if (c == 'f')
        return literal(j, "false");
    if (c == 'n')
        return literal(j, "null");
    if (c == '-' || (c >= '0' && c <= '9')) {
        return number(j);
    }
    return -1;
}

static int key_is(span_t k, const char *name)
{
    size_t n = strlen(name);
    return k.n == n && memcmp(k.s, name, n) == 0;
}

/* ``n`` hex digits (n even) -> n / 2 bytes; -1 if any is not a hex digit.  Vectorised
 * (``nibble``): for the two hashes of each transaction and the data of those made anew,
 * against a table lookup per digit (3,000 transactions, medians of 100-150 alternating
 * scans: the read 0.17-0.2 ms shorter, the rows of 3,000 new transactions 0.23 ms). */
static int hex_decode(const unsigned char *p, size_t n, unsigned char *out)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n / 2; i++)
        out[i] = (unsigned char)(nibble(p[2 * i], &bad) << 4 | nibble(p[2 * i + 1], &bad));
    return bad == 0 ? 0 : -1;
}

/* bitcoind's reversed hex of a hash -> internal byte order */
static int hash_hex(span_t s, unsigned char out[32])
{
    uint64_t fwd[4];
    if (s.n != 64 || hex_decode(s.s, 64, (unsigned char *)fwd) != 0)
        return -1;
    for (int i = 0; i < 4; i++) { /* the 32 bytes reversed: 8 at a time */
        uint64_t w = __builtin_bswap64(fwd[i]);
        memcpy(out + 8 * (3 - i), &w, 8);
    }
    return 0;
}

static int grow(void **buf, size_t *cap, size_t need, size_t item)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 256;
    while (n < need)
        n *= 2;
    void *p = realloc(*buf, n * item);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* ---- the objects and arrays read: one walk each, a handler per member or item ---- */

/* An object's members: ``fn`` gets each key (a plain string: an escaped key declines)
 * with ``j`` at its value, which it must consume. */
static int each_member(js_t *j, int (*fn)(js_t *, span_t, void *), void *ctx)
{
    if (!eat(j, '{'))
        return -1;
    if (eat(j, '}'))
        return 0;
    for (;;) {
        span_t k;
        int escaped;
        if (string_span(j, &k, &escaped) != 0 || escaped || !eat(j, ':') || fn(j, k, ctx) != 0)
            return -1;
        if (!eat(j, ','))
            return eat(j, '}') ? 0 : -1;
    }
}

/* An array's items after its '[' (``after_item``: after an item, before its separator),
 * to its ']': ``fn`` consumes each one. */
static int items_on(js_t *j, int (*fn)(js_t *, void *), void *ctx, int after_item)
{
    if (after_item ? !eat(j, ',') : eat(j, ']'))
        return after_item && !eat(j, ']') ? -1 : 0;
    for (;;) {
        if (fn(j, ctx) != 0)
            return -1;
        if (!eat(j, ','))
            return eat(j, ']') ? 0 : -1;
    }
}

/* An array's items: ``fn`` consumes each one. */
static int each_item(js_t *j, int (*fn)(js_t *, void *), void *ctx)
{
    return eat(j, '[') ? items_on(j, fn, ctx, 0) : -1;
}

/* one transaction being read */
typedef struct {
    scan_t *s;
    tx_t *t;
    unsigned seen; /* bits: data txid hash depends fee sigops weight */
    span_t hash;
} txread_t;

/* one of its ``depends``: 1-based, a transaction before it */
static int tx_depend(js_t *j, void *ctx)
{
    txread_t *r = ctx;
    scan_t *s = r->s;
    int64_t d;
    if (integer(j, &d) != 0 || d < 1 || (uint64_t)d > s->ntx)
        return -1;
    if (grow((void **)&s->deps, &s->cap_dep, s->ndep + 1, sizeof(uint32_t)) != 0) {
        s->oom = 1;
        return -1;
    }
    s->deps[s->ndep++] = (uint32_t)(d - 1);
    return 0;
}

static int tx_member(js_t *j, span_t k, void *ctx)
{
    txread_t *r = ctx;
    tx_t *t = r->t;
    unsigned bit = key_is(k, "data") ? 1 : key_is(k, "txid") ? 2 : key_is(k, "hash") ? 4
        : key_is(k, "depends") ? 8 : key_is(k, "fee") ? 16 : key_is(k, "sigops") ? 32
        : key_is(k, "weight") ? 64 : 0;
    if (bit & r->seen)
        return -1; /* a duplicate: json keeps the last one; leave that to it */
    r->seen |= bit;
    span_t v;
    switch (bit) {
    case 1:
        if (hex_string(j, &v) != 0)
            return -1;
        t->data_off = (size_t)(v.s - r->s->base);
        t->data_len = v.n;
        return 0;
    case 2:
        return plain_string(j, &v) == 0 && hash_hex(v, t->txid) == 0 ? 0 : -1;
    case 4:
        return plain_string(j, &r->hash);
    case 8:
        return each_item(j, tx_depend, r);
    case 16:
        return integer(j, &t->fee);
    case 32:
        return integer(j, &t->sigops);
    case 64:
        return integer(j, &t->weight);
    default:
        return skip_value(j, 3);
    }
}

/* one member of "transactions" */
static int scan_tx(js_t *j, void *ctx)
{
    scan_t *s = ctx;
    if (grow((void **)&s->txs, &s->cap_tx, s->ntx + 1, sizeof(tx_t)) != 0) {
        s->oom = 1;
        return -1;
    }
    tx_t *t = &s->txs[s->ntx];
    memset(t, 0, sizeof *t);
    t->dep_start = s->ndep;
    txread_t r = {s, t, 0, {NULL, 0}};
    if (each_member(j, tx_member, &r) != 0)
        return -1;
    if ((r.seen & (1 | 2 | 16 | 64)) != (1 | 2 | 16 | 64))
        return -1;
    /* the wtxid: "hash", or the txid when "hash" is absent or empty (as the Python reader) */
    if (r.hash.n == 0)
        memcpy(t->wtxid, t->txid, 32);
    else if (hash_hex(r.hash, t->wtxid) != 0)
        return -1;
    t->dep_count = s->ndep - t->dep_start;
    if (__builtin_add_overflow(s->sum_weight, t->weight, &s->sum_weight) ||
        __builtin_add_overflow(s->sum_sigops, t->sigops, &s->sum_sigops) ||
        __builtin_add_overflow(s->sum_fee, t->fee, &s->sum_fee))
        return -1; /* sums past 64 bits: Python's integers take it from here */
    s->ntx++;
    return 0;
}

/* ---- reading ahead: the transactions read while the reply still arrives ----
 *
 * A 3,000-transaction reply takes 1-2 ms to arrive and its scan as long again after the
 * last byte.  ahead() reads the transactions array's whole items as far as the bytes go,
 * each time more arrive (the rpc source calls it from the reply's read callback), and the
 * scan of the whole reply takes those items over instead of reading them again.  It is
 * the same reading: an item read whole (its closing brace in the bytes so far) reads the
 * same from the whole reply, since nothing in an item looks past that brace; the scan
 * still reads everything else, every separator included, and declines as it would have;
 * an item the bytes cut short is read again once more of it is there (the whole item
 * again: a hex string's closing quote is found with memchr before its digits are checked,
 * so a long one cut short costs little).  The bytes read ahead must not change until the
 * scan (the reader only writes past them). */
typedef struct ahead_s {
    const unsigned char *base; /* the buffer read, and its length: the scan checks both */
    size_t len;
    size_t arr_at;  /* offset of the transactions array's '[' (0: not found yet) */
    size_t resume;  /* offset after '[' or after the last whole item read */
    int gave_up;    /* not looked for further: no array where Core puts it, or taken */
    scan_t s;       /* the items read: txs, deps, sums */
} ahead_t;

#define AHEAD_NAME "sv2ffi._gbtscan.ahead"
/* how far into a reply the transactions array is looked for (Core writes it after six
 * short members, a few hundred bytes in) */
#define AHEAD_FIND_MAX 65536

static void ahead_free(ahead_t *a)
{
    if (a != NULL) {
        free(a->s.txs);
        free(a->s.deps);
        free(a);
    }
}

static void ahead_capsule_free(PyObject *cap)
{
    ahead_free(PyCapsule_GetPointer(cap, AHEAD_NAME));
}

/* Looking for the result's transactions array with the scan's own walkers: a handler
 * returns -1 to stop the walk once it is found (or the bytes run out before its '['). */
typedef struct {
    const unsigned char *base;
    long at; /* >0 its offset, -1 "transactions" is not an array, 0 not found yet */
} find_t;

static int find_in_result(js_t *j, span_t k, void *ctx)
{
    find_t *f = ctx;
    if (!key_is(k, "transactions"))
        return skip_value(j, 2);
    ws(j);
    if (j->p < j->end)
        f->at = *j->p == '[' ? (long)(j->p - f->base) : -1;
    return -1;
}

static int find_in_reply(js_t *j, span_t k, void *ctx)
{
    return key_is(k, "result") ? each_member(j, find_in_result, ctx) : skip_value(j, 1);
}

/* The offset of the result's transactions array in the bytes so far: >0 found, 0 not yet
 * (cut short, or not well formed: the caller stops looking past AHEAD_FIND_MAX), -1 not
 * there (a whole reply without it, or not an array). */
static long find_txs_array(const unsigned char *base, size_t avail)
{
    js_t j = {base, base + avail};
    find_t f = {base, 0};
    if (each_member(&j, find_in_reply, &f) == 0)
        return -1;
    return f.at;
}

/* The whole items from a->resume on, up to avail. */
static void ahead_items(ahead_t *a, const unsigned char *base, size_t avail)
{
    scan_t *s = &a->s;
    js_t j = {base + a->resume, base + avail};
    s->base = base;
    for (;;) {
        if (s->ntx > 0) {
            ws(&j);
            if (j.p == j.end || *j.p != ',')
                return; /* more to come, or the array's end: the scan reads that */
            j.p++;
        }
        ws(&j);
        if (j.p == j.end || *j.p == ']')
            return;
        size_t ndep = s->ndep;
        int64_t w = s->sum_weight, g = s->sum_sigops, f = s->sum_fee;
        if (scan_tx(&j, s) != 0) { /* cut short (or not well formed: the scan will say) */
            s->ndep = ndep;
            s->sum_weight = w, s->sum_sigops = g, s->sum_fee = f;
            if (s->oom)
                a->gave_up = 1;
            return;
        }
        a->resume = (size_t)(j.p - base);
    }
}

/* The scan's items after the ones read ahead, as each_item would go on from there. */
static int items_after_ahead(js_t *j, scan_t *s)
{
    ahead_t *a = s->ahead;
    s->txs = a->s.txs, s->ntx = a->s.ntx, s->cap_tx = a->s.cap_tx;
    s->deps = a->s.deps, s->ndep = a->s.ndep, s->cap_dep = a->s.cap_dep;
    s->sum_weight = a->s.sum_weight, s->sum_sigops = a->s.sum_sigops;
    s->sum_fee = a->s.sum_fee;
    memset(&a->s, 0, sizeof a->s); /* the scan's now; the read-ahead is used up */
    a->gave_up = 1;
    s->ahead = NULL;
    j->p = s->base + a->resume;
    return items_on(j, scan_tx, s, s->ntx > 0);
}

static int result_member(js_t *j, span_t k, void *ctx)
{
    scan_t *s = ctx;
    for (int i = 0; i < F_INT_COUNT; i++)
        if (key_is(k, INT_NAMES[i])) {
            if (s->have_int[i] || integer(j, &s->ints[i]) != 0)
                return -1;
            s->have_int[i] = 1;
            return 0;
        }
    for (int i = 0; i < F_STR_COUNT; i++)
        if (key_is(k, STR_NAMES[i])) {
            if (s->have_str[i] || plain_string(j, &s->strs[i]) != 0)
                return -1;
            s->have_str[i] = 1;
            return 0;
        }
    if (key_is(k, "transactions")) {
        if (s->have_txs)
            return -1;
        s->have_txs = 1;
        ws(j);
        if (s->ahead != NULL && (size_t)(j->p - s->base) == s->ahead->arr_at)
            return items_after_ahead(j, s);
        return each_item(j, scan_tx, s);
    }
    return skip_value(j, 2);
}

/* the JSON-RPC envelope: a result object and a null (or no) error */
typedef struct {
    scan_t *s;
    int have_result, have_error;
} reply_t;

static int reply_member(js_t *j, span_t k, void *ctx)
{
    reply_t *r = ctx;
    if (key_is(k, "result")) {
        if (r->have_result)
            return -1;
        r->have_result = 1;
        return each_member(j, result_member, r->s);
    }
    if (key_is(k, "error")) {
        ws(j);
        if (r->have_error)
            return -1;
        r->have_error = 1;
        return literal(j, "null");
    }
    return skip_value(j, 1);
}

static int scan_reply(js_t *j, scan_t *s)
{
    reply_t r = {s, 0, 0};
    if (each_member(j, reply_member, &r) != 0)
        return -1;
    ws(j);
    return r.have_result && s->have_txs && j->p == j->end ? 0 : -1;
}

/* ---- merkle trees (the interpreter released) ---- */

/* ``n`` nodes at ``buf`` (room for n + 1) reduced one level in place; the new count */
static size_t reduce_level(unsigned char *buf, size_t n)
{
    if (n & 1) {
        memcpy(buf + 32 * n, buf + 32 * (n - 1), 32);
        n++;
    }
    sha256d64(buf, buf, n / 2);
    return n / 2;
}

/* Whether the result's default_witness_commitment is a witness commitment output's script
 * as Core writes it (hex, lowercase as Core's): then it is taken for the witness tree.
 * Anything else, and no such member, and the tree is hashed here. */
static int usable_node_commitment(const scan_t *s)
{
    static const char head[] = "6a24aa21a9ed";
    span_t c = s->strs[F_COMMITMENT];
    if (!s->have_str[F_COMMITMENT] || c.n != 76 || memcmp(c.s, head, 12) != 0)
        return 0;
    for (size_t i = 12; i < c.n; i++)
        if (!((c.s[i] >= '0' && c.s[i] <= '9') || (c.s[i] >= 'a' && c.s[i] <= 'f')))
            return 0;
    return 1;
}

/* The two trees on one thread: each on its own thread measured slower on a 2-core VM (3.1-3.4
 * ms median against 1.8 for 3,000 transactions: the second waited for its core to wake).
 * Where a helper pays (see HELPER_MIN_CPUS), it hashes them while this one matches the
 * held transactions and makes the rows, which need the interpreter. */
static int trees(scan_t *s)
{
    size_t n = s->ntx + 1;
    unsigned char *buf = calloc(n + 1, 32);
    s->path = malloc(32 * 64); /* a level per bit of the count at most */
    if (buf == NULL || s->path == NULL) {
        free(buf);
        s->oom = 1;
        return -1;
    }
    /* the txids behind the coinbase placeholder: the path is each level's second node */
    for (size_t i = 0; i < s->ntx; i++)
        memcpy(buf + 32 * (i + 1), s->txs[i].txid, 32);
    for (size_t m = n; m > 1;) {
        if (m & 1) {
            memcpy(buf + 32 * m, buf + 32 * (m - 1), 32);
            m++;
        }
        memcpy(s->path + 32 * s->npath++, buf + 32, 32);
        m = reduce_level(buf, m);
    }
    /* the witness root: the wtxids behind the coinbase's (32 zero bytes) */
    if (s->node_commitment) {
        free(buf);
        return 0;
    }
    memset(buf, 0, 32);
    for (size_t i = 0; i < s->ntx; i++)
        memcpy(buf + 32 * (i + 1), s->txs[i].wtxid, 32);
    for (size_t m = n; m > 1;)
        m = reduce_level(buf, m);
    memcpy(s->root, buf, 32);
    free(buf);
    return 0;
}

/* ---- transactions already held (``refs``), matched with the interpreter held ---- */

static int cmp_wtxid(const void *a, const void *b)
{
    return memcmp(*(const unsigned char *const *)a, *(const unsigned char *const *)b, 32);
}

/* Whether two transactions share a wtxid (then nothing is matched here: the Python
 * reader matches each against what the ones before it added).  Without the interpreter.
 * An open-addressing set keyed by each wtxid's first 8 bytes (hashes: already uniform),
 * whole wtxids compared on a collision: linear time (a sort of 3,000 pointers through
 * memcmp took 0.4 ms). */
static int has_duplicate_wtxid(const scan_t *s)
{
    if (s->ntx < 2)
        return 0;
    size_t cap = 16;
    while (cap < 2 * s->ntx)
        cap <<= 1;
    const unsigned char **set = calloc(cap, sizeof *set);
    if (set == NULL)
        return 1; /* unknown: match nothing */
    int dup = 0;
    for (size_t i = 0; i < s->ntx && !dup; i++) {
        const unsigned char *w = s->txs[i].wtxid;
        uint64_t h;
        memcpy(&h, w, 8);
        for (size_t k = (size_t)h & (cap - 1);; k = (k + 1) & (cap - 1)) {
            if (set[k] == NULL) {
                set[k] = w;
                break;
            }
            if (memcmp(set[k], w, 32) == 0) {
                dup = 1;
                break;
            }
        }
    }
    free(set);
    return dup;
}

static PyObject *S_fee, *S_sigops, *S_weight, *S_txid, *S_parents;

/* Where a class with __slots__ keeps an attribute: its member descriptor's offset, read
 * once per call for the type of the first object met, so each attribute of each held
 * transaction is one load instead of a generic attribute lookup (3,000 transactions x 5
 * attributes: 0.8 ms less).  Other types, and attributes that are not plain slots, take
 * PyObject_GetAttr. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t off[5]; /* fee sigops weight txid parents; -1: not a slot */
} slots_t;

static void learn_slots(slots_t *k, PyTypeObject *type)
{
    PyObject *names[5] = {S_fee, S_sigops, S_weight, S_txid, S_parents};
    k->type = type;
    for (int i = 0; i < 5; i++) {
        PyObject *d = _PyType_Lookup(type, names[i]); /* borrowed */
        k->off[i] = -1;
        if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
            if (m->type == T_OBJECT_EX && !(m->flags & READ_RESTRICTED))
                k->off[i] = m->offset;
        }
    }
}

/* attribute ``i`` of ``obj``, a new reference (NULL with an error set) */
static PyObject *slot(slots_t *k, PyObject *obj, int i)
{
    static PyObject **names[5] = {&S_fee, &S_sigops, &S_weight, &S_txid, &S_parents};
    if (Py_TYPE(obj) != k->type)
        learn_slots(k, Py_TYPE(obj));
    if (k->off[i] >= 0) {
        PyObject *v = *(PyObject **)((char *)obj + k->off[i]);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(obj, *names[i]);
}

/* 1 if attribute ``i`` of ``obj`` is the int ``want``, 0 if not, -1 on an error */
static int attr_is(slots_t *k, PyObject *obj, int i, int64_t want)
{
    PyObject *v = slot(k, obj, i);
    if (v == NULL)
        return -1;
    int same = 0;
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        same = !overflow && x == want;
    }
    Py_DECREF(v);
    return same;
}

/* Row ``i``'s parents (the txids its depends name, sorted) against ``parents`` */
/* Row ``t``'s parents as txids, sorted (as held objects keep them), into ``ids``
 * (t->dep_count slots); ``txs`` and ``deps`` are the scan's, or a memo's, the row is in. */
static void parent_ids(const tx_t *txs, const uint32_t *deps, const tx_t *t,
                       const unsigned char **ids)
{
    for (size_t d = 0; d < t->dep_count; d++)
        ids[d] = txs[deps[t->dep_start + d]].txid;
    if (t->dep_count > 1)
        qsort(ids, t->dep_count, sizeof *ids, cmp_wtxid);
}

static int parents_are(const scan_t *s, const tx_t *t, PyObject *parents)
{
    if (!PyTuple_CheckExact(parents) || (size_t)PyTuple_GET_SIZE(parents) != t->dep_count)
        return 0;
    const unsigned char *one[1], **ids = one;
    if (t->dep_count > 1 && (ids = malloc(t->dep_count * sizeof *ids)) == NULL)
        return -1;
    parent_ids(s->txs, s->deps, t, ids);
    int same = 1;
    for (size_t d = 0; d < t->dep_count && same; d++) {
        PyObject *p = PyTuple_GET_ITEM(parents, (Py_ssize_t)d);
        same = PyBytes_CheckExact(p) && PyBytes_GET_SIZE(p) == 32 &&
               memcmp(PyBytes_AS_STRING(p), ids[d], 32) == 0;
    }
    if (ids != one)
        free(ids);
    return same;
}

/* Row ``i`` against the live transaction ``refs`` holds for its wtxid, as
 * TxInterner.find decides (same fee, sigops and parents): 1 with *hit set (a new
 * reference), 0 (build a new one), 2 (held with another txid or weight: a node
 * contradicting itself; the caller then matches nothing), -1 on an error. */
static int match_row(const scan_t *s, size_t i, PyObject *refs, PyObject *wtxid, slots_t *k,
                     PyObject **hit)
{
    const tx_t *t = &s->txs[i];
    PyObject *ref = PyDict_GetItemWithError(refs, wtxid); /* borrowed */
    if (ref == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyWeakref_Check(ref))
        return 0;
    PyObject *obj = PyWeakref_GetObject(ref); /* borrowed; None once gone */
    if (obj == Py_None)
        return 0;
    Py_INCREF(obj);
    int r = attr_is(k, obj, 0, t->fee);
    if (r == 1)
        r = attr_is(k, obj, 1, t->sigops);
    if (r == 1) {
        PyObject *parents = slot(k, obj, 4);
        r = parents == NULL ? -1 : parents_are(s, t, parents);
        Py_XDECREF(parents);
    }
    if (r == 1) { /* TxInterner.find's match: the same bytes must say the same */
        r = attr_is(k, obj, 2, t->weight);
        if (r == 1) {
            PyObject *txid = slot(k, obj, 3);
            r = txid == NULL ? -1 : PyBytes_CheckExact(txid) && PyBytes_GET_SIZE(txid) == 32 &&
                                       memcmp(PyBytes_AS_STRING(txid), t->txid, 32) == 0;
            Py_XDECREF(txid);
        }
        if (r == 0)
            r = 2;
    }
    if (r == 1)
        *hit = obj;
    else
        Py_DECREF(obj);
    return r;
}

/* ---- the last scan's transactions, kept for the next (``memo``) ---- */

/* MEMO_SAVES: matching 3,000 held transactions through ``refs`` reads each held object,
 * its fee, sigops, weight, txid and parents: six scattered objects a row, cache misses
 * once the 1.5 MB reply has been read through the caches.  Against the memo a row costs
 * a probe of one table and a compare of one row.  In the TP, scans alternating with and
 * without it (tip_latency, 1 client, 3,000 transactions, 75 scans): 2.32 ms median
 * against 2.99, upper quartile 3.27 against 3.91. */
#define MEMO_NAME "sv2ffi._gbtscan.memo"

typedef struct {
    tx_t *txs;
    size_t ntx;
    uint32_t *deps;
    uint32_t *slots; /* open addressing on a wtxid's first 8 bytes: row + 1, 0 empty */
    size_t mask;
} memo_t;

static void memo_free(memo_t *m)
{
    if (m != NULL) {
        free(m->txs);
        free(m->deps);
        free(m->slots);
        free(m);
    }
}

static void memo_capsule_free(PyObject *cap)
{
    memo_free(PyCapsule_GetPointer(cap, MEMO_NAME));
}

static size_t memo_slot(const unsigned char *wtxid, size_t mask)
{
    uint64_t k;
    memcpy(&k, wtxid, 8); /* a hash already: its bytes are uniform */
    return (size_t)k & mask;
}

/* The scan's rows as a memo, taking over its txs and deps; NULL for memory (the scan
 * then keeps them and frees them as usual). */
static memo_t *memo_take(scan_t *s)
{
    size_t cap = 16;
    while (cap < 2 * s->ntx)
        cap <<= 1;
    memo_t *m = calloc(1, sizeof *m);
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (m == NULL || slots == NULL) {
        free(m);
        free(slots);
        return NULL;
    }
    for (size_t i = 0; i < s->ntx; i++) {
        size_t h = memo_slot(s->txs[i].wtxid, cap - 1);
        while (slots[h] != 0)
            h = (h + 1) & (cap - 1);
        slots[h] = (uint32_t)(i + 1);
    }
    m->txs = s->txs;
    m->ntx = s->ntx;
    m->deps = s->deps;
    m->slots = slots;
    m->mask = cap - 1;
    s->txs = NULL;
    s->deps = NULL;
    return m;
}

/* the memo's row with this wtxid, or -1 */
static long memo_find(const memo_t *m, const unsigned char *wtxid)
{
    for (size_t h = memo_slot(wtxid, m->mask); m->slots[h] != 0; h = (h + 1) & m->mask) {
        uint32_t v = m->slots[h] - 1;
        if (memcmp(m->txs[v].wtxid, wtxid, 32) == 0)
            return (long)v;
    }
    return -1;
}

/* Whether row ``t`` of this scan and row ``u`` of the memo name the same parents (their
 * txids, in any order); -1 for memory. */
static int memo_parents_same(const scan_t *s, const tx_t *t, const memo_t *m, const tx_t *u)
{
    size_t n = t->dep_count;
    if (u->dep_count != n)
        return 0;
    if (n == 0)
        return 1;
    const unsigned char *two[2], **a = two;
    if (n > 1 && (a = malloc(2 * n * sizeof *a)) == NULL)
        return -1;
    const unsigned char **b = a + n;
    parent_ids(s->txs, s->deps, t, a);
    parent_ids(m->txs, m->deps, u, b);
    int same = 1;
    for (size_t d = 0; d < n && same; d++)
        same = memcmp(a[d], b[d], 32) == 0;
    if (a != two)
        free(a);
    return same;
}

/* Row ``i`` against the memo, as match_row decides against the object ``refs`` holds
 * (which is the memo's, see ``memo``): 1 with *hit, 0, 2, -1 as match_row; 3 when the
 * memo has no such wtxid (then ``refs`` decides). */
static int memo_match(const scan_t *s, size_t i, const memo_t *m, PyObject *memo_txs,
                      PyObject **hit)
{
    const tx_t *t = &s->txs[i];
    long k = memo_find(m, t->wtxid);
    if (k < 0)
        return 3;
    const tx_t *u = &m->txs[k];
    if (u->fee != t->fee || u->sigops != t->sigops)
        return 0;
    int r = memo_parents_same(s, t, m, u);
    if (r != 1)
        return r;
    if (u->weight != t->weight || memcmp(u->txid, t->txid, 32) != 0)
        return 2;
    if (k >= PyList_GET_SIZE(memo_txs)) /* checked at the call; a list is mutable */
        return 3;
    *hit = Py_NewRef(PyList_GET_ITEM(memo_txs, k));
    return 1;
}

/* ---- results as Python objects (the interpreter held) ---- */

/* a transaction's bytes from its hex (checked hex digits, an even count: hex_string) */
static PyObject *hex_bytes(const unsigned char *p, size_t n)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n / 2));
    if (b == NULL)
        return NULL;
    hex_decode(p, n, (unsigned char *)PyBytes_AS_STRING(b)); /* checked: cannot fail */
    return b;
}

/* The trees on a helper thread, while the calling thread, the interpreter taken back,
 * matches the held transactions and makes the rows (``build``): from TREES_PAR_MIN
 * transactions, and only where this process may run on HELPER_MIN_CPUS CPUs.  On the
 * 2-vCPU machine this was written on, a scan alone with the other CPU idle gained from
 * it (3,000 transactions, medians of 60 alternating scans: 1.94-2.48 ms against
 * 2.16-3.17), but where it matters it lost: in the TP, the scan of a new tip's template
 * with the node, the TP's event loop and the clients on the same two CPUs, scans
 * alternating between the two ways (tip_latency, 1 client, 3,000 transactions, two
 * invocations of 2 runs x 30 tips, 71-85 scans each; ms, medians): 3.42 / 3.19 on one
 * thread against 3.96 / 3.35 with the helper, the part after the parse 1.81 / 1.80
 * against 1.98 / 1.97, the upper quartile 4.95 / 3.40 against 5.29 / 3.84.
 * The helper started 0.06-1.9 ms after pthread_create, and while it hashed the rows took
 * twice as long (1.5-2 ms against 0.6-0.8: two vCPUs that behave like one core's
 * hyperthreads).  With four CPUs or more the node and the clients leave one free. */
#define TREES_PAR_MIN 256
#define HELPER_MIN_CPUS 4

static void *trees_thread(void *arg)
{
    scan_t *s = arg;
    s->trees_rc = trees(s);
    return NULL;
}

/* The trees hashed, here or on the helper thread: only then may path, root, oom and
 * trees_rc be read.  Called with the interpreter held; idempotent. */
static void trees_done(scan_t *s)
{
    if (!s->helping)
        return;
    Py_BEGIN_ALLOW_THREADS
    pthread_join(s->helper, NULL);
    Py_END_ALLOW_THREADS
    s->helping = 0;
}

static PyObject *build(scan_t *s, PyObject *refs, const memo_t *memo, PyObject *memo_txs)
{
    PyObject *fields = PyDict_New(), *txs = PyList_New((Py_ssize_t)s->ntx),
             *path = NULL, *out = NULL, *held = NULL, *misses = NULL;
    if (fields == NULL || txs == NULL)
        goto done;
    for (int i = 0; i < F_INT_COUNT; i++) {
        if (!s->have_int[i])
            continue;
        PyObject *v = PyLong_FromLongLong(s->ints[i]);
        if (v == NULL || PyDict_SetItemString(fields, INT_NAMES[i], v) != 0) {
            Py_XDECREF(v);
            goto done;
        }
        Py_DECREF(v);
    }
    for (int i = 0; i < F_STR_COUNT; i++) {
        if (!s->have_str[i])
            continue;
        PyObject *v = PyUnicode_DecodeUTF8((const char *)s->strs[i].s,
                                           (Py_ssize_t)s->strs[i].n, "strict");
        if (v == NULL) { /* not UTF-8: the json module's business */
            PyErr_Clear();
            Py_CLEAR(fields);
            Py_DECREF(txs);
            Py_RETURN_NONE;
        }
        if (PyDict_SetItemString(fields, STR_NAMES[i], v) != 0) {
            Py_DECREF(v);
            goto done;
        }
        Py_DECREF(v);
    }
    /* the transactions already held, when asked and certain: each becomes its object in
     * ``held``; the others' indices go to ``misses`` and only they get a row */
    if (refs != NULL && !s->dup) {
        held = PyList_New((Py_ssize_t)s->ntx);
        misses = PyList_New(0);
        if (held == NULL || misses == NULL)
            goto done;
        slots_t k = {NULL, {-1, -1, -1, -1, -1}};
        for (size_t i = 0; i < s->ntx; i++) {
            PyObject *hit = NULL;
            int r = memo != NULL ? memo_match(s, i, memo, memo_txs, &hit) : 3;
            if (r == 3) {
                PyObject *wtxid = PyBytes_FromStringAndSize((const char *)s->txs[i].wtxid, 32);
                r = wtxid == NULL ? -1 : match_row(s, i, refs, wtxid, &k, &hit);
                Py_XDECREF(wtxid);
            }
            if (r < 0)
                goto done;
            if (r == 2) { /* match nothing: the Python reader takes every row */
                Py_CLEAR(held);
                Py_CLEAR(misses);
                break;
            }
            if (r == 1) {
                PyList_SET_ITEM(held, (Py_ssize_t)i, hit);
                continue;
            }
            PyList_SET_ITEM(held, (Py_ssize_t)i, Py_NewRef(Py_None));
            PyObject *n = PyLong_FromSize_t(i);
            if (n == NULL || PyList_Append(misses, n) != 0) {
                Py_XDECREF(n);
                goto done;
            }
            Py_DECREF(n);
        }
    }
    for (size_t i = 0; i < s->ntx; i++) {
        tx_t *t = &s->txs[i];
        if (held != NULL && PyList_GET_ITEM(held, (Py_ssize_t)i) != Py_None) {
            PyList_SET_ITEM(txs, (Py_ssize_t)i, Py_NewRef(Py_None)); /* held: no row */
            continue;
        }
        PyObject *parents = PyTuple_New((Py_ssize_t)t->dep_count);
        if (parents == NULL)
            goto done;
        for (size_t d = 0; d < t->dep_count; d++) {
            PyObject *v = PyLong_FromUnsignedLong(s->deps[t->dep_start + d]);
            if (v == NULL) {
                Py_DECREF(parents);
                goto done;
            }
            PyTuple_SET_ITEM(parents, (Py_ssize_t)d, v);
        }
        PyObject *row = PyTuple_New(7);
        if (row == NULL) {
            Py_DECREF(parents);
            goto done;
        }
        PyObject *items[7] = {
            PyBytes_FromStringAndSize((const char *)t->txid, 32),
            PyBytes_FromStringAndSize((const char *)t->wtxid, 32),
            PyLong_FromLongLong(t->fee), PyLong_FromLongLong(t->sigops),
            PyLong_FromLongLong(t->weight), parents,
            hex_bytes(s->base + t->data_off, t->data_len)};
        int failed = 0;
        for (int k = 0; k < 7; k++) { /* the row owns each item, NULL ones stay empty */
            failed |= items[k] == NULL;
            PyTuple_SET_ITEM(row, k, items[k]);
        }
        if (failed) {
            Py_DECREF(row);
            goto done;
        }
        PyList_SET_ITEM(txs, (Py_ssize_t)i, row);
    }
    trees_done(s);
    if (s->trees_rc != 0) { /* trees() fails only for memory */
        PyErr_NoMemory();
        goto done;
    }
    path = PyList_New((Py_ssize_t)s->npath);
    if (path == NULL)
        goto done;
    for (size_t i = 0; i < s->npath; i++) {
        PyObject *v = PyBytes_FromStringAndSize((const char *)s->path + 32 * i, 32);
        if (v == NULL)
            goto done;
        PyList_SET_ITEM(path, (Py_ssize_t)i, v);
    }
    PyObject *matched = held != NULL ? PyTuple_Pack(2, held, misses) : Py_NewRef(Py_None);
    if (matched == NULL)
        goto done;
    PyObject *root = s->node_commitment ? Py_NewRef(Py_None)
                                        : PyBytes_FromStringAndSize((const char *)s->root, 32);
    if (root == NULL) {
        Py_DECREF(matched);
        goto done;
    }
    /* the rows kept for the next scan: only when every row was matched here, against
     * ``refs`` as the caller holds it */
    memo_t *next = held != NULL ? memo_take(s) : NULL;
    PyObject *kept = next == NULL ? Py_NewRef(Py_None)
                                  : PyCapsule_New(next, MEMO_NAME, memo_capsule_free);
    if (kept == NULL) {
        memo_free(next);
        Py_DECREF(root);
        Py_DECREF(matched);
        goto done;
    }
    out = Py_BuildValue("(OOON(LLL)NN)", fields, txs, path, root, (long long)s->sum_weight,
                        (long long)s->sum_sigops, (long long)s->sum_fee, matched, kept);
done:
    Py_XDECREF(held);
    Py_XDECREF(misses);
    Py_XDECREF(fields);
    Py_XDECREF(txs);
    Py_XDECREF(path);
    return out;
}

static PyObject *scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    PyObject *memo_obj = nargs >= 4 && args[3] != Py_None ? args[3] : NULL,
             *memo_txs = nargs >= 5 && args[4] != Py_None ? args[4] : NULL,
             *ahead_obj = nargs >= 6 && args[5] != Py_None ? args[5] : NULL;
    memo_t *memo = memo_obj != NULL && PyCapsule_IsValid(memo_obj, MEMO_NAME)
        ? PyCapsule_GetPointer(memo_obj, MEMO_NAME) : NULL;
    if (nargs < 1 || nargs > 6 || !(PyBytes_Check(args[0]) || PyByteArray_Check(args[0])) ||
        (ahead_obj != NULL && !PyCapsule_IsValid(ahead_obj, AHEAD_NAME)) ||
        (nargs >= 2 && args[1] != Py_None && !PyDict_CheckExact(args[1])) ||
        (nargs >= 3 && args[2] != Py_None && !PyBool_Check(args[2])) ||
        (memo_obj != NULL) != (memo_txs != NULL) || (memo_obj != NULL && memo == NULL) ||
        (memo_txs != NULL && (!PyList_CheckExact(memo_txs) ||
                              (size_t)PyList_GET_SIZE(memo_txs) != memo->ntx)) ||
        (memo != NULL && (nargs < 2 || args[1] == Py_None))) {
        PyErr_SetString(PyExc_TypeError, "scan(reply: bytes | bytearray, refs: dict | None = "
                                         "None, helper: bool | None = None, memo=None, "
                                         "memo_txs: list | None = None, ahead=None): a memo "
                                         "from an earlier scan with a list of its rows' "
                                         "length, and refs; ahead from ahead()");
        return NULL;
    }
    PyObject *refs = nargs >= 2 && args[1] != Py_None ? args[1] : NULL;
    int want_helper = nargs >= 3 && args[2] != Py_None ? args[2] == Py_True : -1;
    /* a bytearray (the rpc source's reply buffer, read into in place) is exported for the
     * call: it cannot be resized while the scan runs without the interpreter; bytes are
     * immutable anyway */
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0)
        return NULL;
    scan_t s;
    memset(&s, 0, sizeof s);
    s.base = (const unsigned char *)view.buf;
    js_t j = {s.base, s.base + view.len};
    if (ahead_obj != NULL) {
        ahead_t *a = PyCapsule_GetPointer(ahead_obj, AHEAD_NAME);
        if (!a->gave_up && a->arr_at != 0 && a->base == s.base && a->len == (size_t)view.len)
            s.ahead = a; /* taken over at "transactions", once */
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = scan_reply(&j, &s) == 0;
    s.node_commitment = ok && usable_node_commitment(&s);
    /* else (or if the helper cannot start) the trees are hashed here */
    if (ok && (want_helper < 0 ? s.ntx >= TREES_PAR_MIN && usable_cpus() >= HELPER_MIN_CPUS
                               : want_helper))
        s.helping = pthread_create(&s.helper, NULL, trees_thread, &s) == 0;
    if (ok && !s.helping) {
        s.trees_rc = trees(&s);
        ok = s.trees_rc == 0;
    }
    if (ok && refs != NULL)
        s.dup = has_duplicate_wtxid(&s);
    Py_END_ALLOW_THREADS
    PyObject *out;
    if (!s.helping && s.oom)
        out = PyErr_NoMemory();
    else if (!ok)
        out = Py_NewRef(Py_None);
    else
        out = build(&s, refs, memo, memo_txs);
    trees_done(&s); /* whatever way build() left */
    free(s.txs);
    free(s.deps);
    free(s.path);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *ahead(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !(PyBytes_Check(args[0]) || PyByteArray_Check(args[0])) ||
        (args[1] != Py_None && !PyCapsule_IsValid(args[1], AHEAD_NAME)) ||
        !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "ahead(reply: bytes | bytearray, state, got: int): "
                                         "state is None or what the last call returned");
        return NULL;
    }
    Py_ssize_t got = PyLong_AsSsize_t(args[2]);
    if (got == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0)
        return NULL;
    if (got < 0 || got > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "ahead(): got must be within the reply's length");
        return NULL;
    }
    PyObject *cap = args[1];
    ahead_t *a;
    if (cap == Py_None) {
        if ((a = calloc(1, sizeof *a)) == NULL) {
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
        a->base = view.buf;
        a->len = (size_t)view.len;
        if ((cap = PyCapsule_New(a, AHEAD_NAME, ahead_capsule_free)) == NULL) {
            free(a);
            PyBuffer_Release(&view);
            return NULL;
        }
    } else {
        a = PyCapsule_GetPointer(cap, AHEAD_NAME);
        Py_INCREF(cap);
    }
    if (a->base != view.buf || a->len != (size_t)view.len)
        a->gave_up = 1; /* another buffer than the one it began on */
    if (!a->gave_up) {
        Py_BEGIN_ALLOW_THREADS
        if (a->arr_at == 0) {
            long at = find_txs_array(a->base, (size_t)got);
            if (at > 0)
                a->arr_at = (size_t)at, a->resume = (size_t)at + 1;
            else if (at < 0 || got >= AHEAD_FIND_MAX)
                a->gave_up = 1;
        }
        if (a->arr_at != 0 && !a->gave_up && (size_t)got > a->resume)
            ahead_items(a, a->base, (size_t)got); /* (fewer bytes than last time: nothing) */
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    return cap;
}

static PyObject *ahead_read(PyObject *self, PyObject *state)
{
    (void)self;
    if (!PyCapsule_IsValid(state, AHEAD_NAME)) {
        PyErr_SetString(PyExc_TypeError, "ahead_read(state): a state from ahead()");
        return NULL;
    }
    const ahead_t *a = PyCapsule_GetPointer(state, AHEAD_NAME);
    return PyLong_FromSize_t(a->gave_up ? 0 : a->s.ntx);
}

static PyMethodDef methods[] = {
    {"ahead_read", ahead_read, METH_O,
     "ahead_read(state) -> int: the transactions a state from ahead() holds for a scan (0 "
     "once a scan took them over, or when it stopped reading ahead)."},
    {"ahead", (PyCFunction)(void (*)(void))ahead, METH_FASTCALL,
     "ahead(reply, state, got) -> state: the transactions of a reply still arriving read as "
     "far as its first ``got`` bytes go (state None at first, then what the last call "
     "returned), for scan(..., ahead=state) to take over (see sv2ffi/native/gbtscan.c)."},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(reply, refs=None, helper=None, memo=None, memo_txs=None, ahead=None) -> "
     "(fields, txs, "
     "merkle_path, witness_root, totals, matched, memo) or "
     "None: a getblocktemplate JSON-RPC reply read in C (see sv2ffi/native/gbtscan.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_gbtscan",
    "getblocktemplate replies read in C (see sv2ffi/tp/sources/gbt.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gbtscan(void)
{
    hex_table();
    if ((S_fee = PyUnicode_InternFromString("fee")) == NULL ||
        (S_sigops = PyUnicode_InternFromString("sigops")) == NULL ||
        (S_weight = PyUnicode_InternFromString("weight")) == NULL ||
        (S_txid = PyUnicode_InternFromString("txid")) == NULL ||
        (S_parents = PyUnicode_InternFromString("parents")) == NULL)
        return NULL;
    return sha256d_init() == 0 ? PyModule_Create(&module) : NULL;
}

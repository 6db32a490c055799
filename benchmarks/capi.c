/* benchmarks/capi.c: what each codec call of libsv2 costs, next to its plain-C floor.
 *
 * For three messages -- SetNewPrevHash (80-byte payload), NewTemplate (5 coinbase outputs,
 * 12-deep merkle path) and RequestTransactionData.Success (3,000 transactions of 500
 * bytes) -- it measures ns per call of
 *   sv2_encode        struct -> malloc'd frame (then sv2_bytes_free)
 *   sv2_encode_into   struct -> the caller's buffer
 *   sv2_decoder_next  buffered frame -> struct owning its bytes (then sv2_message_free)
 *   sv2_decode        frame in the caller's buffer -> struct (then sv2_message_free)
 * and, in the same run, a hand-written C encoder/decoder written for exactly these three
 * messages doing the same work with memcpy: the same malloc'd (or caller's) frame, the
 * same one-allocation decoded message, the same length checks. That is the floor; the
 * ratio is what the schema-driven, fully checked codec costs above it. It also prints
 * how long the first codec call of the process takes (libsv2's codec is C: no
 * interpreter starts).
 *
 *   cc -O2 benchmarks/capi.c $(sv2ffi config --cflags --libs) -o /tmp/capi_bench
 *   /tmp/capi_bench [seconds per measurement, default 0.3]
 * (a source build has it as build/capi/capi_bench)
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sv2.h"

/* ---- plain C: the same encode and decode, written directly -------------------------- */

static uint8_t *put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); return p + 2; }
static uint8_t *put_u24(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); return p + 3; }
static uint8_t *put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); return p + 4; } /* little-endian host */
static uint8_t *put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); return p + 8; }
static uint8_t *put_bytes(uint8_t *p, const void *d, size_t n) { if (n) memcpy(p, d, n); return p + n; }
static uint32_t get_u24(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16; }
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static size_t plain_payload_size(const Sv2Message *m)
{
    size_t n = 0, i;
    switch (m->type) {
    case SV2_MSG_SET_NEW_PREV_HASH: return 8 + 32 + 4 + 4 + 32;
    case SV2_MSG_NEW_TEMPLATE:
        return 8 + 1 + 4 + 4 + 1 + m->new_template.coinbase_prefix.len + 4 + 8 + 4 + 2 +
               m->new_template.coinbase_tx_outputs.len + 4 + 1 + 32 * m->new_template.merkle_path.len;
    case SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS:
        n = 8 + 2 + m->request_transaction_data_success.excess_data.len + 2;
        for (i = 0; i < m->request_transaction_data_success.transaction_list.len; i++)
            n += 3 + m->request_transaction_data_success.transaction_list.elements[i].len;
        return n;
    default: return 0;
    }
}

static int plain_encode_into(const Sv2Message *m, uint8_t *buf, size_t cap, size_t *written);

static int plain_encode(const Sv2Message *m, Sv2Bytes *out)
{
    size_t len = plain_payload_size(m), n;
    uint8_t *buf = malloc(6 + len);
    if (!buf) return -1;
    if (plain_encode_into(m, buf, 6 + len, &n) != 0) {
        free(buf);
        return -1;
    }
    out->data = buf;
    out->len = n;
    return 0;
}

static int plain_encode_into(const Sv2Message *m, uint8_t *buf, size_t cap, size_t *written)
{
    size_t len = plain_payload_size(m), i;
    uint8_t *p = buf;
    if (cap < 6 + len) return -1;
    p = put_u16(p, 0);
    *p++ = (uint8_t)m->type;
    p = put_u24(p, (uint32_t)len);
    if (m->type == SV2_MSG_SET_NEW_PREV_HASH) {
        const Sv2SetNewPrevHash *s = &m->set_new_prev_hash;
        p = put_u64(p, s->template_id);
        p = put_bytes(p, s->prev_hash, 32);
        p = put_u32(p, s->header_timestamp);
        p = put_u32(p, s->n_bits);
        p = put_bytes(p, s->target, 32);
    } else if (m->type == SV2_MSG_NEW_TEMPLATE) {
        const Sv2NewTemplate *t = &m->new_template;
        if (t->coinbase_prefix.len > 255 || t->coinbase_tx_outputs.len > 65535 || t->merkle_path.len > 255)
            return -1;
        p = put_u64(p, t->template_id);
        *p++ = t->future_template;
        p = put_u32(p, t->version);
        p = put_u32(p, t->coinbase_tx_version);
        *p++ = (uint8_t)t->coinbase_prefix.len;
        p = put_bytes(p, t->coinbase_prefix.data, t->coinbase_prefix.len);
        p = put_u32(p, t->coinbase_tx_input_sequence);
        p = put_u64(p, t->coinbase_tx_value_remaining);
        p = put_u32(p, t->coinbase_tx_outputs_count);
        p = put_u16(p, (uint16_t)t->coinbase_tx_outputs.len);
        p = put_bytes(p, t->coinbase_tx_outputs.data, t->coinbase_tx_outputs.len);
        p = put_u32(p, t->coinbase_tx_locktime);
        *p++ = (uint8_t)t->merkle_path.len;
        p = put_bytes(p, t->merkle_path.elements, 32 * t->merkle_path.len);
    } else {
        const Sv2RequestTransactionDataSuccess *r = &m->request_transaction_data_success;
        if (r->excess_data.len > 65535 || r->transaction_list.len > 65535)
            return -1;
        p = put_u64(p, r->template_id);
        p = put_u16(p, (uint16_t)r->excess_data.len);
        p = put_bytes(p, r->excess_data.data, r->excess_data.len);
        p = put_u16(p, (uint16_t)r->transaction_list.len);
        for (i = 0; i < r->transaction_list.len; i++) {
            const Sv2Bytes *tx = &r->transaction_list.elements[i];
            if (tx->len > 0xffffff)
                return -1;
            p = put_u24(p, (uint32_t)tx->len);
            p = put_bytes(p, tx->data, tx->len);
        }
    }
    *written = (size_t)(p - buf);
    return 0;
}

/* Decodes the frame at *in (advancing it) into a message owning one malloc'd block. */
static int plain_decode(const uint8_t **in, const uint8_t *end, Sv2Message *m)
{
    const uint8_t *p = *in, *f;
    uint32_t len;
    size_t i, n, total;
    uint8_t *store;
    if (end - p < 6) return 1;
    len = get_u24(p + 3);
    if ((size_t)(end - p) < 6 + (size_t)len) return 1;
    memset(m, 0, sizeof *m);
    m->type = (Sv2MsgType)p[2];
    f = p + 6;
    if (m->type == SV2_MSG_SET_NEW_PREV_HASH) {
        Sv2SetNewPrevHash *s = &m->set_new_prev_hash;
        if (len != 80) return -1;
        s->template_id = get_u64(f);
        memcpy(s->prev_hash, f + 8, 32);
        s->header_timestamp = get_u32(f + 40);
        s->n_bits = get_u32(f + 44);
        memcpy(s->target, f + 48, 32);
    } else if (m->type == SV2_MSG_NEW_TEMPLATE) {
        Sv2NewTemplate *t = &m->new_template;
        const uint8_t *q = f, *stop = f + len;
        size_t plen, olen, depth;
        if (stop - q < 18) return -1;
        t->template_id = get_u64(q); q += 8;
        t->future_template = *q++ & 1;
        t->version = get_u32(q); q += 4;
        t->coinbase_tx_version = get_u32(q); q += 4;
        plen = *q++;
        if ((size_t)(stop - q) < plen + 18) return -1;
        f = q; q += plen;
        t->coinbase_tx_input_sequence = get_u32(q); q += 4;
        t->coinbase_tx_value_remaining = get_u64(q); q += 8;
        t->coinbase_tx_outputs_count = get_u32(q); q += 4;
        olen = get_u16(q); q += 2;
        if ((size_t)(stop - q) < olen + 5) return -1;
        p = q; q += olen;
        t->coinbase_tx_locktime = get_u32(q); q += 4;
        depth = *q++;
        if ((size_t)(stop - q) != 32 * depth) return -1;
        store = malloc(32 * depth + plen + olen + 1);
        if (!store) return -1;
        memcpy(store, q, 32 * depth);
        memcpy(store + 32 * depth, f, plen);
        memcpy(store + 32 * depth + plen, p, olen);
        t->merkle_path.elements = (const uint8_t(*)[32])store;
        t->merkle_path.len = depth;
        t->coinbase_prefix.data = store + 32 * depth;
        t->coinbase_prefix.len = plen;
        t->coinbase_tx_outputs.data = store + 32 * depth + plen;
        t->coinbase_tx_outputs.len = olen;
        m->storage = store;
    } else if (m->type == SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS) {
        Sv2RequestTransactionDataSuccess *r = &m->request_transaction_data_success;
        const uint8_t *q = f, *stop = f + len;
        size_t elen;
        Sv2Bytes *txs;
        uint8_t *data;
        if (stop - q < 12) return -1;
        r->template_id = get_u64(q); q += 8;
        elen = get_u16(q); q += 2;
        if ((size_t)(stop - q) < elen + 2) return -1;
        f = q; q += elen;
        n = get_u16(q); q += 2;
        /* first pass: validate and size; second: copy */
        total = 0;
        p = q;
        for (i = 0; i < n; i++) {
            size_t tl;
            if (stop - p < 3) return -1;
            tl = get_u24(p);
            if ((size_t)(stop - p - 3) < tl) return -1;
            total += tl;
            p += 3 + tl;
        }
        if (p != stop) return -1;
        store = malloc(n * sizeof(Sv2Bytes) + elen + total + 1);
        if (!store) return -1;
        txs = (Sv2Bytes *)store;
        data = store + n * sizeof(Sv2Bytes);
        memcpy(data, f, elen);
        r->excess_data.data = data;
        r->excess_data.len = elen;
        data += elen;
        for (i = 0; i < n; i++) {
            size_t tl = get_u24(q);
            memcpy(data, q + 3, tl);
            txs[i].data = data;
            txs[i].len = tl;
            data += tl;
            q += 3 + tl;
        }
        r->transaction_list.elements = txs;
        r->transaction_list.len = n;
        m->storage = store;
    } else {
        return -1;
    }
    *in += 6 + (size_t)len;
    return 0;
}

/* ---- the messages ----------------------------------------------------------------------- */

static uint8_t merkle[12][32], prefix[4] = {3, 0x40, 0xd1, 0x0c}, outputs[5 * 43], excess[32];
static uint8_t *tx_data;
static Sv2Bytes txs[3000];

static void build(Sv2Message m[3])
{
    size_t i;
    memset(m, 0, 3 * sizeof *m);
    m[0].type = SV2_MSG_SET_NEW_PREV_HASH;
    m[0].set_new_prev_hash.template_id = 12345;
    memset(m[0].set_new_prev_hash.prev_hash, 0xab, 32);
    m[0].set_new_prev_hash.header_timestamp = 1700000000;
    m[0].set_new_prev_hash.n_bits = 0x1703a30c;
    memset(m[0].set_new_prev_hash.target, 0x0f, 32);

    for (i = 0; i < 12; i++) memset(merkle[i], (int)i, 32);
    for (i = 0; i < 5; i++) { /* 5 outputs: value, script length 34, a P2WSH-sized script */
        memset(outputs + 43 * i, 0, 8);
        outputs[43 * i + 8] = 34;
        memset(outputs + 43 * i + 9, (int)(0x51 + i), 34);
    }
    m[1].type = SV2_MSG_NEW_TEMPLATE;
    m[1].new_template.template_id = 12345;
    m[1].new_template.future_template = true;
    m[1].new_template.version = 0x20000000;
    m[1].new_template.coinbase_tx_version = 2;
    m[1].new_template.coinbase_prefix.data = prefix;
    m[1].new_template.coinbase_prefix.len = sizeof prefix;
    m[1].new_template.coinbase_tx_input_sequence = 0xffffffff;
    m[1].new_template.coinbase_tx_value_remaining = 312500000;
    m[1].new_template.coinbase_tx_outputs_count = 5;
    m[1].new_template.coinbase_tx_outputs.data = outputs;
    m[1].new_template.coinbase_tx_outputs.len = sizeof outputs;
    m[1].new_template.merkle_path.elements = (const uint8_t(*)[32])merkle;
    m[1].new_template.merkle_path.len = 12;

    tx_data = malloc(3000 * 500);
    for (i = 0; i < 3000; i++) {
        memset(tx_data + 500 * i, (int)(i % 251), 500);
        txs[i].data = tx_data + 500 * i;
        txs[i].len = 500;
    }
    m[2].type = SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS;
    m[2].request_transaction_data_success.template_id = 12345;
    m[2].request_transaction_data_success.excess_data.data = excess;
    m[2].request_transaction_data_success.excess_data.len = sizeof excess;
    m[2].request_transaction_data_success.transaction_list.elements = txs;
    m[2].request_transaction_data_success.transaction_list.len = 3000;
}

/* ---- timing ------------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "%s failed: %s\n", what, sv2_last_error());
    exit(1);
}

static double bench_encode(const Sv2Message *m, int plain, double seconds)
{
    unsigned long n = 0;
    double start = now(), t;
    do {
        for (int k = 0; k < 16; k++) {
            Sv2Bytes f;
            if (plain ? plain_encode(m, &f) != 0 : sv2_encode(m, &f) != SV2_OK) die("encode");
            free((void *)f.data);
        }
        n += 16;
    } while ((t = now() - start) < seconds);
    return t / n * 1e9;
}

static double bench_encode_into(const Sv2Message *m, int plain, uint8_t *buf, size_t cap,
                                double seconds)
{
    unsigned long n = 0;
    double start = now(), t;
    do {
        for (int k = 0; k < 16; k++) {
            size_t w;
            if (plain ? plain_encode_into(m, buf, cap, &w) != 0
                      : sv2_encode_into(m, buf, cap, &w) != SV2_OK)
                die("encode_into");
        }
        n += 16;
    } while ((t = now() - start) < seconds);
    return t / n * 1e9;
}

/* One frame in the caller's buffer, decoded again and again (sv2_decode vs plain C). */
static double bench_decode_buffer(const Sv2Bytes *frame, int plain, double seconds)
{
    unsigned long n = 0;
    double start = now(), t;
    do {
        for (int k = 0; k < 16; k++) {
            Sv2Message m;
            size_t used;
            const uint8_t *p = frame->data;
            if (plain ? plain_decode(&p, frame->data + frame->len, &m) != 0
                      : sv2_decode(frame->data, frame->len, &m, &used) != SV2_OK)
                die("decode");
            free(m.storage);
        }
        n += 16;
    } while ((t = now() - start) < seconds);
    return t / n * 1e9;
}

/* Frames are buffered (untimed) in batches; only the calls that take them out are timed. */
static double bench_decode(const Sv2Bytes *frame, int plain, double seconds)
{
    unsigned long n = 0;
    double timed = 0;
    size_t batch = frame->len > 100000 ? 4 : 256, i;
    uint8_t *buf = malloc(batch * frame->len);
    Sv2Decoder *dec = sv2_decoder_new();
    for (i = 0; i < batch; i++) memcpy(buf + i * frame->len, frame->data, frame->len);
    while (timed < seconds) {
        double start;
        const uint8_t *p = buf, *end = buf + batch * frame->len;
        if (!plain && sv2_decoder_feed(dec, buf, batch * frame->len) != SV2_OK) die("feed");
        start = now();
        for (i = 0; i < batch; i++) {
            Sv2Message m;
            if (plain ? plain_decode(&p, end, &m) != 0 : sv2_decoder_next(dec, &m) != SV2_OK)
                die("decode");
            free(m.storage);
        }
        timed += now() - start;
        n += batch;
    }
    sv2_decoder_free(dec);
    free(buf);
    return timed / n * 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median3(double v[3])
{
    qsort(v, 3, sizeof v[0], cmp_double);
    return v[1];
}

static void row(const char *name, const char *call, double lib, double plain)
{
    printf("%-46s %-17s %12.0f %12.0f %7.2fx\n", name, call, lib, plain, lib / plain);
}

int main(int argc, char **argv)
{
    static const char *names[3] = {"SetNewPrevHash", "NewTemplate (5 outputs, 12-deep path)",
                                   "RequestTransactionData.Success (3000 x 500 B)"};
    double seconds = argc > 1 ? atof(argv[1]) : 0.3, first;
    Sv2Message m[3];
    int i;
    build(m);
    {
        /* the very first codec call of this process */
        Sv2Bytes f;
        double t0 = now();
        if (sv2_encode(&m[0], &f) != SV2_OK) die("first sv2_encode");
        first = now() - t0;
        sv2_bytes_free(&f);
    }
    printf("libsv2 ABI %d; %.2f s per figure; ns per call, median of 3; first codec call of the "
           "process: %.1f us\n\n", sv2_abi_version(), seconds, first * 1e6);
    printf("%-46s %-17s %12s %12s %8s\n", "message", "call", "libsv2", "plain C", "ratio");
    for (i = 0; i < 3; i++) {
        Sv2Bytes frame, check;
        Sv2Message back;
        const uint8_t *p;
        double v[8][3];
        uint8_t *buf;
        if (sv2_encode(&m[i], &frame) != SV2_OK) die("sv2_encode");
        /* both encoders must produce the same bytes, both decoders the same message */
        if (plain_encode(&m[i], &check) != 0 || check.len != frame.len ||
            memcmp(check.data, frame.data, frame.len) != 0) {
            fprintf(stderr, "plain C and libsv2 disagree on %s\n", names[i]);
            return 1;
        }
        p = check.data;
        if (plain_decode(&p, check.data + check.len, &back) != 0) die("plain_decode");
        free(back.storage);
        free((void *)check.data);
        buf = malloc(frame.len);
        for (int r = 0; r < 3; r++) {
            v[0][r] = bench_encode(&m[i], 0, seconds);
            v[1][r] = bench_encode(&m[i], 1, seconds);
            v[2][r] = bench_encode_into(&m[i], 0, buf, frame.len, seconds);
            v[3][r] = bench_encode_into(&m[i], 1, buf, frame.len, seconds);
            v[4][r] = bench_decode(&frame, 0, seconds);
            v[5][r] = bench_decode(&frame, 1, seconds);
            v[6][r] = bench_decode_buffer(&frame, 0, seconds);
            v[7][r] = bench_decode_buffer(&frame, 1, seconds);
        }
        row(names[i], "sv2_encode", median3(v[0]), median3(v[1]));
        row("", "sv2_encode_into", median3(v[2]), median3(v[3]));
        row("", "sv2_decoder_next", median3(v[4]), median3(v[5]));
        row("", "sv2_decode", median3(v[6]), median3(v[7]));
        printf("%-46s frame %zu bytes\n", "", frame.len);
        free(buf);
        sv2_bytes_free(&frame);
    }
    free(tx_data);
    return 0;
}

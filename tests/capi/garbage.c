/* garbage.c: hostile input and API misuse must give status codes, never a crash.
 *
 *   garbage decoder ROUNDS SEED     random bytes and mangled frames into sv2_decoder_*
 *   garbage connection ROUNDS SEED  random bytes into plain / initiator / responder
 *   garbage args                    NULLs, dangling and foreign handles, bad fields
 *
 * Every status must be one the header defines, every error must come with a
 * sv2_last_error() text, decoded messages must encode again, and a connection that
 * failed must stay failed. Prints a tally per status; exits 1 on any violation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample_messages.h"

static int failures;
static unsigned long tally[16];

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,       \
                    __LINE__, #cond, sv2_last_error());                                    \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill_random(uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

static int known_status(Sv2Status st)
{
    return strcmp(sv2_status_name(st), "SV2_UNKNOWN_STATUS") != 0;
}

static void count(Sv2Status st)
{
    CHECK(known_status(st));
    if (st < 0)
        CHECK(sv2_last_error()[0] != '\0');
    if (known_status(st))
        tally[st + 9]++;
}

static void print_tally(const char *what)
{
    int i;
    printf("%s:", what);
    for (i = 0; i < 16; i++)
        if (tally[i])
            printf(" %s=%lu", sv2_status_name((Sv2Status)(i - 9)), tally[i]);
    printf("\n");
}

/* A buffer that is mostly plausible: frames with real msg_types and random payloads,
 * sometimes a valid frame, sometimes pure noise. */
static size_t make_input(uint8_t *buf, size_t cap)
{
    static const uint8_t types[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x70, 0x71,
                                    0x72, 0x73, 0x74, 0x75, 0x76, 0x99};
    size_t len = 0;
    while (len + 6 < cap && rnd() % 8) {
        size_t payload = rnd() % 64;
        if (rnd() % 4 == 0) { /* pure noise */
            size_t n = 1 + rnd() % 32;
            if (len + n > cap)
                break;
            fill_random(buf + len, n);
            len += n;
            continue;
        }
        if (len + 6 + payload > cap)
            break;
        buf[len] = (uint8_t)(rnd() % 16 == 0 ? rnd() : 0);
        buf[len + 1] = (uint8_t)(rnd() % 16 == 0 ? 0x80 : 0);
        buf[len + 2] = types[rnd() % sizeof types];
        buf[len + 3] = (uint8_t)payload;
        buf[len + 4] = 0;
        buf[len + 5] = 0;
        fill_random(buf + len + 6, payload);
        len += 6 + payload;
    }
    return len;
}

static int run_decoder(unsigned long rounds)
{
    uint8_t buf[4096];
    unsigned long r;
    unsigned long decoded = 0;
    for (r = 0; r < rounds; r++) {
        Sv2Decoder *dec = sv2_decoder_new();
        size_t len = make_input(buf, sizeof buf), pos = 0;
        CHECK(dec != NULL);
        while (pos < len) {
            size_t n = 1 + rnd() % 97;
            Sv2Status st;
            Sv2Message msg;
            if (n > len - pos)
                n = len - pos;
            count(sv2_decoder_feed(dec, buf + pos, n));
            pos += n;
            while ((st = sv2_decoder_next(dec, &msg)) != SV2_NEED_MORE_DATA) {
                count(st);
                if (st == SV2_OK) {
                    Sv2Bytes frame;
                    decoded++;
                    /* whatever decodes is a valid message: it must encode again */
                    CHECK(sv2_encode(&msg, &frame) == SV2_OK);
                    sv2_bytes_free(&frame);
                    sv2_message_free(&msg);
                } else {
                    CHECK(msg.storage == NULL);
                    if (st == SV2_ERR_PAYLOAD_TOO_BIG)
                        break;
                }
            }
        }
        sv2_decoder_free(dec);
    }
    print_tally("decoder");
    printf("decoded %lu messages from garbage\n", decoded);
    return 0;
}

static int run_connection(unsigned long rounds)
{
    Sv2Keypair authority, server;
    uint8_t buf[2048];
    unsigned long r;
    CHECK(sv2_keypair_generate(&authority) == SV2_OK);
    CHECK(sv2_keypair_generate(&server) == SV2_OK);
    for (r = 0; r < rounds; r++) {
        Sv2Connection *conn;
        Sv2ResponderKeys keys;
        size_t len, pos = 0;
        int failed = 0;
        memset(&keys, 0, sizeof keys);
        memcpy(keys.static_secret, server.secret, 32);
        memcpy(keys.authority_secret, authority.secret, 32);
        switch (r % 3) {
        case 0:
            conn = sv2_connection_new_plain();
            len = make_input(buf, sizeof buf);
            break;
        case 1:
            conn = sv2_connection_new_responder(&keys);
            len = 1 + rnd() % sizeof buf;
            fill_random(buf, len);
            break;
        default:
            conn = sv2_connection_new_initiator(r % 2 ? authority.pubkey : NULL);
            len = 1 + rnd() % sizeof buf;
            fill_random(buf, len);
            break;
        }
        CHECK(conn != NULL);
        while (pos < len) {
            size_t n = 1 + rnd() % 300;
            Sv2Status st;
            Sv2Message msg;
            Sv2Bytes out;
            if (n > len - pos)
                n = len - pos;
            st = sv2_connection_feed(conn, buf + pos, n);
            pos += n;
            count(st);
            if (failed)
                CHECK(st == SV2_ERR_CLOSED); /* a failed connection stays failed */
            if (st < 0)
                failed = 1;
            while ((st = sv2_connection_next(conn, &msg)) == SV2_OK)
                sv2_message_free(&msg);
            count(st);
            count(sv2_connection_take_output(conn, &out));
            sv2_bytes_free(&out);
        }
        sv2_connection_free(conn);
    }
    print_tally("connection");
    return 0;
}

static int run_args(void)
{
    Sv2Message msgs[SAMPLE_COUNT], m, out;
    Sv2Bytes frame;
    Sv2Decoder *dec;
    Sv2Connection *conn;
    Sv2Keypair kp;
    uint8_t zero[32] = {0}, key[32];
    char text[SV2_AUTHORITY_PUBKEY_TEXT_SIZE];
    /* an unknown msg_type, then a valid RequestTransactionData (template_id 9) */
    static const uint8_t unknown_then_valid[] = {0x00, 0x00, 0x99, 0x01, 0x00, 0x00, 0xab,
                                                 0x00, 0x00, 0x73, 0x08, 0x00, 0x00, 9, 0,
                                                 0,    0,    0,    0,    0,    0};
    /* extension 5 frame (skipped), then SetupConnection.Success with a wrong length */
    static const uint8_t ext_then_bad[] = {0x05, 0x00, 0x01, 0x00, 0x00, 0x00,
                                           0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x02};

    sample_messages(msgs);
    CHECK(sv2_encode(NULL, &frame) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_encode(&msgs[0], NULL) == SV2_ERR_INVALID_ARGUMENT);

    m = msgs[6];
    m.type = (Sv2MsgType)0x7f; /* no message has this type */
    CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(frame.data == NULL && frame.len == 0);
    CHECK(strstr(sv2_last_error(), "type") != NULL);

    m = msgs[6];
    m.new_template.coinbase_prefix.len = 256; /* B0_255: refused before reading */
    CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sv2_last_error(), "coinbase_prefix") != NULL);

    m = msgs[6];
    m.new_template.coinbase_tx_outputs.data = NULL;
    CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);

    m = msgs[6];
    m.new_template.merkle_path.len = 256;
    CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);

    m = msgs[6];
    m.new_template.merkle_path.elements = NULL;
    CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);

    m = msgs[6];
    memset(&m.new_template.future_template, 2, 1); /* a bool that is neither 0 nor 1 */
    CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sv2_last_error(), "future_template") != NULL);

    m = msgs[0];
    m.setup_connection.protocol = 7; /* not a defined protocol */
    CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);

    m = msgs[9];
    {
        Sv2Bytes txs[2] = {{NULL, 5}, {NULL, 0}};
        m.request_transaction_data_success.transaction_list.elements = txs;
        m.request_transaction_data_success.transaction_list.len = 2;
        CHECK(sv2_encode(&m, &frame) == SV2_ERR_INVALID_ARGUMENT);
    }

    dec = sv2_decoder_new();
    CHECK(sv2_decoder_feed(NULL, zero, 1) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_decoder_feed(dec, NULL, 5) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_decoder_feed(dec, NULL, 0) == SV2_OK);
    CHECK(sv2_decoder_next(dec, NULL) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_decoder_next((Sv2Decoder *)(uintptr_t)0x1234, &out) == SV2_ERR_INVALID_ARGUMENT);

    CHECK(sv2_decoder_feed(dec, unknown_then_valid, sizeof unknown_then_valid) == SV2_OK);
    CHECK(sv2_decoder_next(dec, &out) == SV2_ERR_UNKNOWN_MESSAGE);
    CHECK(sv2_decoder_next(dec, &out) == SV2_OK);
    CHECK(out.type == SV2_MSG_REQUEST_TRANSACTION_DATA &&
          out.request_transaction_data.template_id == 9);
    sv2_message_free(&out);
    CHECK(sv2_decoder_feed(dec, ext_then_bad, sizeof ext_then_bad) == SV2_OK);
    CHECK(sv2_decoder_next(dec, &out) == SV2_ERR_DECODE);
    CHECK(strstr(sv2_last_error(), "SetupConnection.Success") != NULL);
    CHECK(sv2_decoder_next(dec, &out) == SV2_NEED_MORE_DATA);

    conn = sv2_connection_new_plain();
    CHECK(conn != NULL);
    CHECK(sv2_decoder_next((Sv2Decoder *)(void *)conn, &out) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sv2_last_error(), "Sv2Connection") != NULL);
    CHECK(sv2_connection_send(conn, NULL) == SV2_ERR_INVALID_ARGUMENT);
    sv2_connection_free(conn);
    CHECK(sv2_connection_send(conn, &msgs[0]) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_connection_is_established(conn) == false);
    sv2_connection_free(conn); /* double free: refused, not a crash */
    CHECK(strstr(sv2_last_error(), "not a live") != NULL);

    sv2_decoder_free(dec);
    CHECK(sv2_decoder_feed(dec, zero, 1) == SV2_ERR_INVALID_ARGUMENT);
    sv2_decoder_free(NULL);
    sv2_message_free(NULL);
    sv2_bytes_free(NULL);

    CHECK(sv2_connection_new_responder(NULL) == NULL);
    CHECK(strstr(sv2_last_error(), "keys") != NULL);
    CHECK(sv2_keypair_from_secret(zero, &kp) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_keypair_generate(NULL) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_keypair_generate(&kp) == SV2_OK);
    CHECK(sv2_authority_pubkey_to_text(kp.pubkey, text, 5) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_authority_pubkey_to_text(kp.pubkey, text, sizeof text) == SV2_OK);
    CHECK(sv2_authority_pubkey_from_text(text, key) == SV2_OK);
    CHECK(memcmp(key, kp.pubkey, 32) == 0);
    text[3] = text[3] == 'x' ? 'y' : 'x';
    CHECK(sv2_authority_pubkey_from_text(text, key) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_authority_pubkey_from_text("not base58 0OIl", key) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(sv2_authority_pubkey_from_text(NULL, key) == SV2_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(sv2_status_name((Sv2Status)12345), "SV2_UNKNOWN_STATUS") == 0);
    printf("args: %s\n", failures ? "FAILED" : "ok");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "args";
    unsigned long rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 200;
    if (argc > 3)
        rng_state ^= strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ull;
    if (strcmp(mode, "decoder") == 0)
        run_decoder(rounds);
    else if (strcmp(mode, "connection") == 0)
        run_connection(rounds);
    else if (strcmp(mode, "args") == 0)
        run_args();
    else {
        fprintf(stderr, "usage: garbage decoder|connection|args [ROUNDS] [SEED]\n");
        return 2;
    }
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    return 0;
}

/* stress.c: many encode/decode round trips and Noise handshakes, for valgrind.
 *
 *   stress ITERATIONS HANDSHAKES [leak]
 *
 * Each iteration encodes and decodes every SV2 message once (SAMPLE_COUNT of them);
 * each handshake runs a Noise initiator against a responder in this process, then sends
 * one message each way. Everything the library returns is freed, so memcheck must find
 * no definitely lost block and no invalid read or write. Exits 1 on any failed call.
 * "leak" forgets to free one decoded message on purpose: the valgrind test uses it to
 * prove that a leak of libsv2's own buffers is reported, not hidden by the suppressions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample_messages.h"

static int failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,       \
                    __LINE__, #cond, sv2_last_error());                                    \
            if (++failures > 20)                                                           \
                exit(1);                                                                   \
        }                                                                                  \
    } while (0)

/* Moves everything one side has queued into the other; returns the byte count. */
static size_t pump(Sv2Connection *from, Sv2Connection *to)
{
    Sv2Bytes out;
    size_t n;
    CHECK(sv2_connection_take_output(from, &out) == SV2_OK);
    n = out.len;
    if (n)
        CHECK(sv2_connection_feed(to, out.data, out.len) == SV2_OK);
    sv2_bytes_free(&out);
    return n;
}

static void handshake(const Sv2Keypair *authority, const Sv2Keypair *server,
                      const Sv2Message *hello, const Sv2Message *reply)
{
    Sv2ResponderKeys keys;
    Sv2Connection *client, *srv;
    Sv2Message got;
    int rounds = 0;

    memset(&keys, 0, sizeof keys);
    memcpy(keys.static_secret, server->secret, 32);
    memcpy(keys.authority_secret, authority->secret, 32);
    client = sv2_connection_new_initiator(authority->pubkey);
    srv = sv2_connection_new_responder(&keys);
    CHECK(client && srv);
    while (!(sv2_connection_is_established(client) && sv2_connection_is_established(srv))) {
        pump(client, srv);
        pump(srv, client);
        if (++rounds > 4) {
            CHECK(!"handshake did not finish");
            break;
        }
    }
    CHECK(sv2_connection_send(client, hello) == SV2_OK);
    pump(client, srv);
    CHECK(sv2_connection_next(srv, &got) == SV2_OK && got.type == hello->type);
    sv2_message_free(&got);
    CHECK(sv2_connection_send(srv, reply) == SV2_OK);
    pump(srv, client);
    CHECK(sv2_connection_next(client, &got) == SV2_OK && got.type == reply->type);
    sv2_message_free(&got);
    CHECK(sv2_connection_next(client, &got) == SV2_NEED_MORE_DATA);
    sv2_connection_free(client);
    sv2_connection_free(srv);
}

int main(int argc, char **argv)
{
    unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    unsigned long handshakes = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
    int leak = argc > 3 && strcmp(argv[3], "leak") == 0;
    unsigned long i, done = 0;
    Sv2Message msgs[SAMPLE_COUNT];
    size_t n = sample_messages(msgs), k;
    Sv2Decoder *dec = sv2_decoder_new();
    Sv2Keypair authority, server;

    CHECK(dec != NULL);
    for (i = 0; i < iterations; i++) {
        for (k = 0; k < n; k++) {
            Sv2Bytes frame = {NULL, 0};
            Sv2Message out;
            memset(&out, 0, sizeof out); /* freed below even if the calls fail */
            CHECK(sv2_encode(&msgs[k], &frame) == SV2_OK);
            CHECK(sv2_decoder_feed(dec, frame.data, frame.len) == SV2_OK);
            CHECK(sv2_decoder_next(dec, &out) == SV2_OK && out.type == msgs[k].type);
            if (leak && i == 0 && msgs[k].type == SV2_MSG_NEW_TEMPLATE)
                memset(&out, 0, sizeof out); /* drops the only pointer to its storage */
            sv2_message_free(&out);
            sv2_bytes_free(&frame);
            done++;
        }
    }
    sv2_decoder_free(dec);
    if (handshakes) {
        CHECK(sv2_keypair_generate(&authority) == SV2_OK);
        CHECK(sv2_keypair_generate(&server) == SV2_OK);
    }
    for (i = 0; i < handshakes; i++)
        handshake(&authority, &server, &msgs[0], &msgs[1]);
    printf("stress: %lu encode+decode round trips, %lu handshakes, %d failures\n", done,
           handshakes, failures);
    return failures ? 1 : 0;
}

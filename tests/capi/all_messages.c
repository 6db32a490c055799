/* all_messages.c: every SV2 message built in C, encoded, decoded and encoded again.
 *
 * Prints one line per message, "<SV2_MSG value> <frame as hex>", which the Python test
 * decodes with the Python codec and compares with the values in sample_messages.h.
 * Exits 0 only if every decode returns the same message (re-encoding gives the same
 * bytes and the spot checks below hold). Builds with nothing but the public header:
 *     cc all_messages.c $(sv2ffi config --cflags --libs)
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
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

static void print_hex(unsigned type, const Sv2Bytes *b)
{
    size_t i;
    printf("%u ", type);
    for (i = 0; i < b->len; i++)
        printf("%02x", b->data[i]);
    printf("\n");
}

static void spot_checks(const Sv2Message *m)
{
    switch (m->type) {
    case SV2_MSG_SETUP_CONNECTION:
        /* decoded text is NUL-terminated, so C string functions work on it */
        CHECK(strcmp((const char *)m->setup_connection.endpoint_host.data, "127.0.0.1") == 0);
        CHECK(m->setup_connection.device_id.len == 0);
        CHECK(m->setup_connection.device_id.data != NULL &&
              m->setup_connection.device_id.data[0] == '\0');
        break;
    case SV2_MSG_NEW_TEMPLATE:
        CHECK(m->new_template.future_template);
        CHECK(m->new_template.merkle_path.len == SAMPLE_MERKLE_DEPTH);
        CHECK(m->new_template.merkle_path.elements[11][31] == (uint8_t)(11 * 16 + 31));
        CHECK(m->new_template.coinbase_tx_value_remaining == 5000000000ull);
        break;
    case SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS:
        CHECK(m->request_transaction_data_success.transaction_list.len == SAMPLE_TX_COUNT);
        CHECK(m->request_transaction_data_success.transaction_list.elements[1].len == 0);
        CHECK(m->request_transaction_data_success.transaction_list.elements[2].len == 250);
        CHECK(m->request_transaction_data_success.transaction_list.elements[2].data[0] == 255);
        break;
    default:
        break;
    }
}

int main(void)
{
    Sv2Message msgs[SAMPLE_COUNT];
    Sv2Bytes all = {NULL, 0};
    uint8_t *stream = NULL;
    size_t n = sample_messages(msgs), i, total = 0;
    Sv2Decoder *dec;

    CHECK(sv2_abi_version() == SV2_ABI_VERSION);
    dec = sv2_decoder_new();
    CHECK(dec != NULL);
    for (i = 0; i < n; i++) {
        Sv2Bytes frame, again;
        Sv2Message out;
        size_t half;

        CHECK(sv2_encode(&msgs[i], &frame) == SV2_OK);
        print_hex((unsigned)msgs[i].type, &frame);
        /* half a frame is not a message yet */
        half = frame.len / 2;
        CHECK(sv2_decoder_feed(dec, frame.data, half) == SV2_OK);
        CHECK(sv2_decoder_next(dec, &out) == SV2_NEED_MORE_DATA);
        CHECK(sv2_decoder_feed(dec, frame.data + half, frame.len - half) == SV2_OK);
        CHECK(sv2_decoder_next(dec, &out) == SV2_OK);
        CHECK(out.type == msgs[i].type);
        spot_checks(&out);
        CHECK(sv2_encode(&out, &again) == SV2_OK);
        CHECK(again.len == frame.len && memcmp(again.data, frame.data, frame.len) == 0);
        stream = realloc(stream, total + frame.len);
        memcpy(stream + total, frame.data, frame.len);
        total += frame.len;
        sv2_message_free(&out);
        CHECK(out.storage == NULL);
        sv2_bytes_free(&again);
        sv2_bytes_free(&frame);
        CHECK(frame.data == NULL && frame.len == 0);
    }
    /* all frames in one chunk come out in order */
    CHECK(sv2_decoder_feed(dec, stream, total) == SV2_OK);
    for (i = 0; i < n; i++) {
        Sv2Message out;
        CHECK(sv2_decoder_next(dec, &out) == SV2_OK);
        CHECK(out.type == msgs[i].type);
        sv2_message_free(&out);
    }
    {
        Sv2Message out;
        CHECK(sv2_decoder_next(dec, &out) == SV2_NEED_MORE_DATA);
    }
    sv2_decoder_free(dec);
    free(stream);
    sv2_bytes_free(&all);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    fprintf(stderr, "all %zu messages round-trip\n", n);
    return 0;
}

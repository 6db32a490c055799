/* fuzz_decode.c: the C codec's decoders on hostile input, under ASan and UBSan.
 *
 * One input is used three ways: sv2_decode of the whole buffer, the streaming decoder fed
 * in chunks the input's first byte chooses (with a payload limit the second byte
 * chooses), and for everything that decodes, encode -> decode -> encode must reproduce
 * the first encoding (a decoded message is always a valid one). Any crash, leak, read
 * out of bounds or undefined behaviour ends the run.
 *
 *   libFuzzer: clang -fsanitize=fuzzer,address,undefined -DSV2_LIBFUZZER ...
 *   anything else: fuzz_decode SEEDS_FILE COUNT [RNG_SEED]
 *     (a plain driver: inputs are the seed frames (hex lines) mutated: bytes flipped,
 *      cut, spliced, lengths made to lie, or plain random bytes)
 *
 * Built against the standalone codec (sv2_codec.h + sv2_codec.c): tests/test_ccodec_fuzz.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sv2_codec.h"

static void die(const char *what)
{
    fprintf(stderr, "fuzz_decode: %s (last error: %s)\n", what, sv2_last_error());
    abort();
}

/* A decoded message must encode, and its encoding must decode to the same encoding. */
static void check_reencodes(const Sv2Message *m)
{
    Sv2Bytes a, b;
    Sv2Message again;
    size_t consumed, size;
    if (sv2_encode(m, &a) != SV2_OK)
        die("a decoded message does not encode");
    if (sv2_encoded_size(m, &size) != SV2_OK || size != a.len)
        die("sv2_encoded_size disagrees with sv2_encode");
    if (sv2_decode(a.data, a.len, &again, &consumed) != SV2_OK || consumed != a.len)
        die("an encoded message does not decode");
    if (sv2_encode(&again, &b) != SV2_OK || b.len != a.len || memcmp(a.data, b.data, a.len))
        die("encode(decode(encode(m))) differs from encode(m)");
    sv2_message_free(&again);
    sv2_bytes_free(&a);
    sv2_bytes_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Sv2Message m;
    size_t consumed, pos = 0, step;
    Sv2Decoder *dec;
    Sv2Status st;

    /* one-shot, frame after frame */
    while (pos < size) {
        st = sv2_decode(data + pos, size - pos, &m, &consumed);
        if (st == SV2_NEED_MORE_DATA)
            break;
        if (st == SV2_OK) {
            check_reencodes(&m);
            sv2_message_free(&m);
        } else if (m.storage != NULL) {
            die("a failed decode left storage");
        }
        if (consumed == 0)
            break; /* a frame above the limit: nothing more to read */
        pos += consumed;
    }

    /* streaming, in chunks */
    step = size ? 1 + data[0] % 97 : 1;
    dec = sv2_decoder_new_with_limit(size > 1 ? (size_t)data[1] * 1024 : SV2_MAX_PAYLOAD);
    if (!dec)
        die("sv2_decoder_new_with_limit");
    for (pos = 0; pos < size; pos += step) {
        size_t n = size - pos < step ? size - pos : step;
        if (sv2_decoder_feed(dec, data + pos, n) != SV2_OK)
            die("sv2_decoder_feed");
        while ((st = sv2_decoder_next(dec, &m)) != SV2_NEED_MORE_DATA) {
            if (st == SV2_OK) {
                check_reencodes(&m);
                sv2_message_free(&m);
            } else if (st == SV2_ERR_PAYLOAD_TOO_BIG) {
                break;
            } else if (st != SV2_ERR_DECODE && st != SV2_ERR_UNKNOWN_MESSAGE) {
                die("an unexpected status from sv2_decoder_next");
            }
        }
        if (st == SV2_ERR_PAYLOAD_TOO_BIG)
            break;
    }
    sv2_decoder_free(dec);
    return 0;
}

#ifndef SV2_LIBFUZZER

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#define MAX_SEEDS 4096
#define MAX_INPUT 8192

int main(int argc, char **argv)
{
    static uint8_t *seeds[MAX_SEEDS];
    static size_t seed_len[MAX_SEEDS];
    static uint8_t input[MAX_INPUT];
    size_t n_seeds = 0, i;
    unsigned long long count, done;
    FILE *f;
    int c, hi = -1;

    if (argc < 3) {
        fprintf(stderr, "usage: fuzz_decode SEEDS_FILE COUNT [RNG_SEED]\n");
        return 2;
    }
    count = strtoull(argv[2], NULL, 10);
    if (argc > 3)
        rng ^= strtoull(argv[3], NULL, 10) * 0xD1B54A32D192ED03ull;
    f = fopen(argv[1], "r");
    if (!f)
        return 2;
    seeds[0] = malloc(MAX_INPUT);
    seed_len[0] = 0;
    while ((c = fgetc(f)) != EOF) {
        int v = hexval(c);
        if (c == '\n') {
            if (seed_len[n_seeds] && n_seeds + 1 < MAX_SEEDS) {
                n_seeds++;
                seeds[n_seeds] = malloc(MAX_INPUT);
                seed_len[n_seeds] = 0;
            }
            continue;
        }
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (seed_len[n_seeds] < MAX_INPUT)
            seeds[n_seeds][seed_len[n_seeds]++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    fclose(f);
    if (seed_len[n_seeds])
        n_seeds++;
    else
        free(seeds[n_seeds]);
    if (!n_seeds)
        return 2;

    for (done = 0; done < count; done++) {
        size_t len = 0, k, flips;
        switch (rnd() % 8) {
        case 0: /* random bytes */
            len = rnd() % 300;
            for (k = 0; k < len; k++)
                input[k] = (uint8_t)rnd();
            break;
        case 1: /* several seeds back to back, one of them cut */
            while (len < MAX_INPUT / 2 && rnd() % 3) {
                size_t s = rnd() % n_seeds, take = seed_len[s];
                if (rnd() % 4 == 0)
                    take = rnd() % (take + 1);
                memcpy(input + len, seeds[s], take);
                len += take;
            }
            break;
        default: { /* one seed with a few bytes changed, maybe cut */
            size_t s = rnd() % n_seeds;
            len = seed_len[s];
            memcpy(input, seeds[s], len);
            flips = rnd() % 5;
            for (k = 0; k < flips && len; k++) {
                size_t at = rnd() % len;
                switch (rnd() % 3) {
                case 0: input[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
                case 1: input[at] = (uint8_t)rnd(); break;
                default: input[at] = (uint8_t)(rnd() % 2 ? 0xff : 0x00); break;
                }
            }
            if (rnd() % 4 == 0)
                len = rnd() % (len + 1);
            break;
        }
        }
        LLVMFuzzerTestOneInput(input, len);
    }
    for (i = 0; i < n_seeds; i++)
        free(seeds[i]);
    printf("fuzz_decode: %llu inputs, %lu seeds, no failure\n", done, (unsigned long)n_seeds);
    return 0;
}
#endif

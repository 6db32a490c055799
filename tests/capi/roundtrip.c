/* roundtrip.c: decode frames given as hex lines on stdin, encode each decoded message
 * again, print the result as hex, one line per frame.
 *
 * The Python test generates the frames (every message type, random field values) and
 * compares the output with its input: C decode + C encode must be the identity. The
 * whole input is fed in chunks of varying size, so frame boundaries fall anywhere.
 * A frame that does not decode prints "ERR <status name>: <last error>".
 *
 * Built against libsv2 (sv2.h), and with -DSV2_STANDALONE against the standalone codec
 * (sv2_codec.h + sv2_codec.c, C99): tests/test_ccodec_standalone.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SV2_STANDALONE
#include "sv2_codec.h"
#else
#include "sv2.h"
#endif

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int main(void)
{
    size_t cap = 1 << 16, len = 0, pos = 0, chunk = 1;
    uint8_t *buf = malloc(cap);
    int c, hi = -1;
    Sv2Decoder *dec = sv2_decoder_new();
    Sv2Message msg;
    Sv2Status st;

    if (!buf || !dec)
        return 2;
    while ((c = getchar()) != EOF) {
        int v = hexval(c);
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                return 2;
        }
        buf[len++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    for (;;) {
        st = sv2_decoder_next(dec, &msg);
        if (st == SV2_NEED_MORE_DATA) {
            size_t n;
            if (pos == len)
                break;
            n = chunk < len - pos ? chunk : len - pos;
            if (sv2_decoder_feed(dec, buf + pos, n) != SV2_OK)
                return 3;
            pos += n;
            chunk = chunk * 7 % 1021 + 1; /* 1, 8, 57, 400, ... */
            continue;
        }
        if (st != SV2_OK) {
            printf("ERR %s: %s\n", sv2_status_name(st), sv2_last_error());
            if (st == SV2_ERR_PAYLOAD_TOO_BIG)
                break;
            continue;
        }
        {
            Sv2Bytes frame;
            size_t i;
            st = sv2_encode(&msg, &frame);
            if (st != SV2_OK) {
                printf("ERR %s: %s\n", sv2_status_name(st), sv2_last_error());
            } else {
                for (i = 0; i < frame.len; i++)
                    printf("%02x", frame.data[i]);
                printf("\n");
            }
            sv2_bytes_free(&frame);
        }
        sv2_message_free(&msg);
    }
    sv2_decoder_free(dec);
    free(buf);
    return 0;
}

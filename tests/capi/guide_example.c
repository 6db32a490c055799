/* guide_example.c: the complete example of docs/c-api.md, verbatim (tests/test_capi.py
 * compiles it with the strict flags and checks its output against the guide). */
#include <stdio.h>
#include <string.h>
#include "sv2.h"

int main(void)
{
    static const uint8_t path[2][32] = {{1}, {2}};
    Sv2Message msg = {0}, out;
    Sv2Bytes frame;
    Sv2Decoder *dec;
    Sv2Status st = SV2_NEED_MORE_DATA;
    size_t i;

    if (sv2_abi_version() != SV2_ABI_VERSION)
        return 1;
    msg.type = SV2_MSG_NEW_TEMPLATE;
    msg.new_template.template_id = 7;
    msg.new_template.future_template = true;
    msg.new_template.coinbase_prefix.data = (const uint8_t *)"\x03\x40\xd1\x0c";
    msg.new_template.coinbase_prefix.len = 4;
    msg.new_template.merkle_path.elements = path;
    msg.new_template.merkle_path.len = 2;
    if (sv2_encode(&msg, &frame) != SV2_OK) {
        fprintf(stderr, "encode: %s\n", sv2_last_error());
        return 1;
    }
    dec = sv2_decoder_new();
    for (i = 0; i < frame.len && st == SV2_NEED_MORE_DATA; i++) {
        sv2_decoder_feed(dec, frame.data + i, 1);
        st = sv2_decoder_next(dec, &out);
    }
    if (st != SV2_OK) {
        fprintf(stderr, "decode: %s: %s\n", sv2_status_name(st), sv2_last_error());
        return 1;
    }
    printf("%s template %llu, %zu merkle hashes, frame of %zu bytes\n",
           out.type == SV2_MSG_NEW_TEMPLATE ? "NewTemplate" : "?",
           (unsigned long long)out.new_template.template_id,
           out.new_template.merkle_path.len, frame.len);
    sv2_message_free(&out);
    sv2_bytes_free(&frame);
    sv2_decoder_free(dec);
    return 0;
}

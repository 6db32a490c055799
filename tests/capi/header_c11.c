/* header_c11.c: include/sv2.h under the strictest C11 flags (-Wall -Wextra -Werror
 * -pedantic), and the C idioms users will write with it. Compile-only. */
#include "sv2.h"

_Static_assert(SV2_ABI_VERSION == 1, "ABI version");
_Static_assert(SV2_FRAME_HEADER_SIZE == 6, "frame header");
_Static_assert(sizeof(((Sv2SetNewPrevHash *)0)->prev_hash) == 32, "U256 is 32 bytes");

int header_c11_use(void);

int header_c11_use(void)
{
    static const uint8_t path[2][32] = {{1}, {2}};
    Sv2Message msg = {.type = SV2_MSG_NEW_TEMPLATE,
                      .new_template = {.template_id = 1,
                                       .future_template = true,
                                       .merkle_path = {.elements = path, .len = 2}}};
    Sv2Bytes frame = {0};
    Sv2Status st = sv2_encode(&msg, &frame);
    sv2_bytes_free(&frame);
    return st == SV2_OK ? (int)msg.new_template.merkle_path.elements[1][0] : -1;
}

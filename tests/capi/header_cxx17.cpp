// header_cxx17.cpp: include/sv2.h unchanged from C++17 (-Wall -Wextra -Werror), with
// the C++ idioms users will write with it. Compile-only.
#include "sv2.h"

#include <memory>
#include <type_traits>

static_assert(SV2_ABI_VERSION == 1, "ABI version");
static_assert(std::is_trivially_copyable<Sv2Message>::value, "plain C struct");
static_assert(std::is_standard_layout<Sv2Message>::value, "C layout");

using DecoderPtr = std::unique_ptr<Sv2Decoder, decltype(&sv2_decoder_free)>;

int header_cxx17_use();

int header_cxx17_use()
{
    DecoderPtr dec(sv2_decoder_new(), &sv2_decoder_free);
    Sv2Message msg{};
    msg.type = SV2_MSG_REQUEST_TRANSACTION_DATA;
    msg.request_transaction_data.template_id = 7;
    Sv2Bytes frame{};
    if (sv2_encode(&msg, &frame) != SV2_OK) return -1;
    sv2_decoder_feed(dec.get(), frame.data, frame.len);
    sv2_bytes_free(&frame);
    Sv2Message out{};
    Sv2Status st = sv2_decoder_next(dec.get(), &out);
    sv2_message_free(&out);
    return st;
}

/* sample_messages.h: one message of every SV2 type, built field by field in C.
 *
 * Used by all_messages.c (round trip + the bytes Python checks) and stress.c. The
 * values are mirrored in tests/test_capi.py::expected_samples(); keep the two in sync.
 * Every buffer is static: a message C builds points at C's own memory (the contract).
 */
#ifndef SAMPLE_MESSAGES_H
#define SAMPLE_MESSAGES_H

#include <string.h>

#include "sv2.h"

#define SAMPLE_COUNT 17
#define SAMPLE_MERKLE_DEPTH 12
#define SAMPLE_TX_COUNT 3

static uint8_t sample_merkle[SAMPLE_MERKLE_DEPTH][32];
static uint8_t sample_tx0[60], sample_tx2[250];
static Sv2Bytes sample_txs[SAMPLE_TX_COUNT];
static uint8_t sample_outputs[46];
static uint8_t sample_excess[32];
static uint8_t sample_coinbase[100];
static uint32_t sample_min_ntime = 1700000002u;
static uint32_t sample_channel_ids[3] = {7, 8, 0x01020304u};
static uint16_t sample_unsupported[2] = {2, 3}, sample_required[1] = {5};
static Sv2Bytes sample_worker;

static Sv2Bytes sample_text(const char *s)
{
    Sv2Bytes b;
    b.data = (const uint8_t *)s;
    b.len = strlen(s);
    return b;
}

/* Fills out[0..SAMPLE_COUNT-1] in schema order; returns SAMPLE_COUNT. */
static size_t sample_messages(Sv2Message *out)
{
    size_t i, j;
    static const uint8_t prefix[4] = {0x03, 0x01, 0x02, 0x03};

    for (i = 0; i < SAMPLE_MERKLE_DEPTH; i++)
        for (j = 0; j < 32; j++)
            sample_merkle[i][j] = (uint8_t)(i * 16 + j);
    for (i = 0; i < sizeof sample_tx0; i++)
        sample_tx0[i] = (uint8_t)(i + 1);
    for (i = 0; i < sizeof sample_tx2; i++)
        sample_tx2[i] = (uint8_t)(255 - i);
    sample_txs[0].data = sample_tx0;
    sample_txs[0].len = sizeof sample_tx0;
    sample_txs[1].data = NULL; /* an empty transaction: len 0 may point nowhere */
    sample_txs[1].len = 0;
    sample_txs[2].data = sample_tx2;
    sample_txs[2].len = sizeof sample_tx2;
    memset(sample_outputs, 0, 8);
    memcpy(sample_outputs + 8, "\x26\x6a\x24\xaa\x21\xa9\xed", 7);
    memset(sample_outputs + 15, 0x11, sizeof sample_outputs - 15);
    memset(sample_excess, 0xaa, sizeof sample_excess);
    for (i = 0; i < sizeof sample_coinbase; i++)
        sample_coinbase[i] = (uint8_t)(i * 3);

    memset(out, 0, SAMPLE_COUNT * sizeof *out);

    out[0].type = SV2_MSG_SETUP_CONNECTION;
    out[0].setup_connection.protocol = SV2_PROTOCOL_TEMPLATE_DISTRIBUTION;
    out[0].setup_connection.min_version = SV2_PROTOCOL_VERSION;
    out[0].setup_connection.max_version = SV2_PROTOCOL_VERSION;
    out[0].setup_connection.flags = 1;
    out[0].setup_connection.endpoint_host = sample_text("127.0.0.1");
    out[0].setup_connection.endpoint_port = 8442;
    out[0].setup_connection.vendor = sample_text("sv2ffi-c");
    out[0].setup_connection.hardware_version = sample_text("x86");
    out[0].setup_connection.firmware = sample_text("0.1");
    out[0].setup_connection.device_id = sample_text("");

    out[1].type = SV2_MSG_SETUP_CONNECTION_SUCCESS;
    out[1].setup_connection_success.used_version = 2;
    out[1].setup_connection_success.flags = 5;

    out[2].type = SV2_MSG_SETUP_CONNECTION_ERROR;
    out[2].setup_connection_error.flags = 0;
    out[2].setup_connection_error.error_code = sample_text(SV2_ERROR_CODE_UNSUPPORTED_PROTOCOL);

    out[3].type = SV2_MSG_CHANNEL_ENDPOINT_CHANGED;
    out[3].channel_endpoint_changed.channel_id = 0xdeadbeefu;

    out[4].type = SV2_MSG_RECONNECT;
    out[4].reconnect.new_host = sample_text("pool.example");
    out[4].reconnect.new_port = 3333;

    out[5].type = SV2_MSG_COINBASE_OUTPUT_CONSTRAINTS;
    out[5].coinbase_output_constraints.coinbase_output_max_additional_size = 128;
    out[5].coinbase_output_constraints.coinbase_output_max_additional_sigops = 7;

    out[6].type = SV2_MSG_NEW_TEMPLATE;
    out[6].new_template.template_id = 0x0102030405060708ull;
    out[6].new_template.future_template = true;
    out[6].new_template.version = 0x20000000u;
    out[6].new_template.coinbase_tx_version = 2;
    out[6].new_template.coinbase_prefix.data = prefix;
    out[6].new_template.coinbase_prefix.len = sizeof prefix;
    out[6].new_template.coinbase_tx_input_sequence = 0xffffffffu;
    out[6].new_template.coinbase_tx_value_remaining = 5000000000ull;
    out[6].new_template.coinbase_tx_outputs_count = 1;
    out[6].new_template.coinbase_tx_outputs.data = sample_outputs;
    out[6].new_template.coinbase_tx_outputs.len = sizeof sample_outputs;
    out[6].new_template.coinbase_tx_locktime = 0;
    out[6].new_template.merkle_path.elements = (const uint8_t(*)[32])sample_merkle;
    out[6].new_template.merkle_path.len = SAMPLE_MERKLE_DEPTH;

    out[7].type = SV2_MSG_SET_NEW_PREV_HASH;
    out[7].set_new_prev_hash.template_id = 0x0102030405060708ull;
    for (j = 0; j < 32; j++) {
        out[7].set_new_prev_hash.prev_hash[j] = (uint8_t)(0xc0 + j);
        out[7].set_new_prev_hash.target[j] = (uint8_t)(j < 29 ? 0xff : 0x7f);
    }
    out[7].set_new_prev_hash.header_timestamp = 1700000000u;
    out[7].set_new_prev_hash.n_bits = 0x207fffffu;

    out[8].type = SV2_MSG_REQUEST_TRANSACTION_DATA;
    out[8].request_transaction_data.template_id = 42;

    out[9].type = SV2_MSG_REQUEST_TRANSACTION_DATA_SUCCESS;
    out[9].request_transaction_data_success.template_id = 42;
    out[9].request_transaction_data_success.excess_data.data = sample_excess;
    out[9].request_transaction_data_success.excess_data.len = sizeof sample_excess;
    out[9].request_transaction_data_success.transaction_list.elements = sample_txs;
    out[9].request_transaction_data_success.transaction_list.len = SAMPLE_TX_COUNT;

    out[10].type = SV2_MSG_REQUEST_TRANSACTION_DATA_ERROR;
    out[10].request_transaction_data_error.template_id = 43;
    out[10].request_transaction_data_error.error_code = sample_text(SV2_ERROR_CODE_STALE_TEMPLATE_ID);

    out[11].type = SV2_MSG_SUBMIT_SOLUTION;
    out[11].submit_solution.template_id = 7;
    out[11].submit_solution.version = 0x20000000u;
    out[11].submit_solution.header_timestamp = 1700000001u;
    out[11].submit_solution.header_nonce = 0x12345678u;
    out[11].submit_solution.coinbase_tx.data = sample_coinbase;
    out[11].submit_solution.coinbase_tx.len = sizeof sample_coinbase;

    /* Mining, Job Declaration and extension messages: an OPTION present and absent, a
       TLV field, sequences of U32 and U16, an extension_type other than 0 */
    out[12].type = SV2_MSG_NEW_MINING_JOB;
    out[12].new_mining_job.channel_id = 7;
    out[12].new_mining_job.job_id = 1;
    out[12].new_mining_job.min_ntime.elements = &sample_min_ntime;
    out[12].new_mining_job.min_ntime.len = 1;
    out[12].new_mining_job.version = 0x20000000u;
    memcpy(out[12].new_mining_job.merkle_root, sample_merkle[3], 32);

    out[13].type = SV2_MSG_NEW_EXTENDED_MINING_JOB;
    out[13].new_extended_mining_job.channel_id = 7;
    out[13].new_extended_mining_job.job_id = 2;
    out[13].new_extended_mining_job.version = 0x20000000u;
    out[13].new_extended_mining_job.version_rolling_allowed = true;
    out[13].new_extended_mining_job.merkle_path.elements = (const uint8_t(*)[32])sample_merkle;
    out[13].new_extended_mining_job.merkle_path.len = 2;
    out[13].new_extended_mining_job.coinbase_tx_prefix.data = sample_coinbase;
    out[13].new_extended_mining_job.coinbase_tx_prefix.len = 42;
    out[13].new_extended_mining_job.coinbase_tx_suffix.data = sample_coinbase + 42;
    out[13].new_extended_mining_job.coinbase_tx_suffix.len = 58;

    sample_worker = sample_text("Worker_001");
    out[14].type = SV2_MSG_SUBMIT_SHARES_EXTENDED;
    out[14].submit_shares_extended.channel_id = 7;
    out[14].submit_shares_extended.sequence_number = 11;
    out[14].submit_shares_extended.job_id = 2;
    out[14].submit_shares_extended.nonce = 0xcafebabeu;
    out[14].submit_shares_extended.ntime = 1700000003u;
    out[14].submit_shares_extended.version = 0x20000000u;
    out[14].submit_shares_extended.extranonce.data = sample_excess;
    out[14].submit_shares_extended.extranonce.len = 8;
    out[14].submit_shares_extended.user_identity.elements = &sample_worker;
    out[14].submit_shares_extended.user_identity.len = 1;

    out[15].type = SV2_MSG_SET_GROUP_CHANNEL;
    out[15].set_group_channel.group_channel_id = 3;
    out[15].set_group_channel.channel_ids.elements = sample_channel_ids;
    out[15].set_group_channel.channel_ids.len = 3;

    out[16].type = SV2_MSG_REQUEST_EXTENSIONS_ERROR;
    out[16].request_extensions_error.request_id = 1;
    out[16].request_extensions_error.unsupported_extensions.elements = sample_unsupported;
    out[16].request_extensions_error.unsupported_extensions.len = 2;
    out[16].request_extensions_error.required_extensions.elements = sample_required;
    out[16].request_extensions_error.required_extensions.len = 1;
    return SAMPLE_COUNT;
}

#endif

/* benchmarks/capi_tp_driver.c: the "node" side of benchmarks/capi_tp.py.
 *
 *   capi_tp_driver DATADIR TEMPLATES
 *
 * TEMPLATES holds one serialized block template per line (hex), each on a new tip. The
 * driver starts an embedded template provider, pushes template 0, prints "listening PORT"
 * and "authority KEY", then for every "push K" line on stdin reads CLOCK_MONOTONIC,
 * calls sv2_tp_push_template with template K and prints "pushed K T0 T1" (seconds before
 * and after the call; CLOCK_MONOTONIC is system-wide, so the benchmark compares T0 with
 * the times its client process saw SetNewPrevHash). "quit" stops and frees the provider.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sv2.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int unhex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int main(int argc, char **argv)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0, count = 0, i;
    ssize_t n;
    uint8_t **blocks = NULL;
    size_t *lens = NULL;
    Sv2TpConfig cfg;
    Sv2Tp *tp;
    char key[SV2_AUTHORITY_PUBKEY_TEXT_SIZE];
    Sv2Status st;

    if (argc != 3) {
        fprintf(stderr, "usage: capi_tp_driver DATADIR TEMPLATES\n");
        return 2;
    }
    f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 2;
    }
    while ((n = getline(&line, &cap, f)) > 1) {
        size_t len = (size_t)(n - 1) / 2;
        blocks = realloc(blocks, (count + 1) * sizeof *blocks);
        lens = realloc(lens, (count + 1) * sizeof *lens);
        blocks[count] = malloc(len);
        for (i = 0; i < len; i++)
            blocks[count][i] = (uint8_t)(unhex_digit(line[2 * i]) << 4 | unhex_digit(line[2 * i + 1]));
        lens[count++] = len;
    }
    fclose(f);

    memset(&cfg, 0, sizeof cfg);
    cfg.network = "regtest";
    cfg.datadir = argv[1];
    cfg.fee_delta = 1000;
    cfg.template_interval_ms = 5000;
    tp = sv2_tp_new(&cfg);
    if (!tp || sv2_tp_push_template(tp, blocks[0], lens[0]) != SV2_OK ||
        sv2_tp_authority_pubkey(tp, key, sizeof key) != SV2_OK || sv2_tp_start(tp) != SV2_OK) {
        fprintf(stderr, "capi_tp_driver: %s\n", sv2_last_error());
        return 1;
    }
    printf("listening %u\nauthority %s\n", (unsigned)sv2_tp_port(tp), key);
    fflush(stdout);
    while (getline(&line, &cap, stdin) > 0) {
        unsigned long k;
        double t0, t1;
        if (strncmp(line, "quit", 4) == 0)
            break;
        if (sscanf(line, "push %lu", &k) != 1 || k >= count) {
            printf("bad command\n");
            fflush(stdout);
            continue;
        }
        t0 = now();
        st = sv2_tp_push_template(tp, blocks[k], lens[k]);
        t1 = now();
        if (st != SV2_OK)
            printf("error %s\n", sv2_last_error());
        else
            printf("pushed %lu %.9f %.9f\n", k, t0, t1);
        fflush(stdout);
    }
    sv2_tp_stop(tp);
    sv2_tp_free(tp);
    for (i = 0; i < count; i++)
        free(blocks[i]);
    free(blocks);
    free(lens);
    free(line);
    return 0;
}

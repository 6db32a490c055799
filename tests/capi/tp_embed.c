/* tp_embed.c: the embedded template provider (sv2_tp_*) driven line by line from a test.
 *
 *   tp_embed DATADIR [--callback-sleep-ms N] [--gil-check] [--stop-in-callback]
 *                    [--push-from-callback HEXFILE] [--fake-stop]
 *
 * Starts a regtest provider on 127.0.0.1 (any port), prints "listening PORT" and
 * "authority KEY", then reads commands on stdin:
 *
 *   push HEX          sv2_tp_push_template -> "push ok" | "push error STATUS MESSAGE"
 *   wait-callback     until a solution callback has been entered -> "callback entered"
 *   push-during-callback HEX
 *                     (with --gil-check) waits until the callback is running and blocked,
 *                     pushes from this thread, then releases the callback
 *   stop              sv2_tp_stop -> "stopped STATUS running_at_return=0|1 callbacks=N"
 *   free              sv2_tp_free -> "freed"
 *   misuse            NULLs, bad configs, stale handles... -> "misuse NAME STATUS MESSAGE"
 *   sleep MS
 *   quit              exit: 0, or 3 if any check failed
 *
 * The callback prints "solution N len=L header=HEX persisted=K sigpipe_blocked=B" (K =
 * blocks in DATADIR/solved-blocks when it ran) and checks the contract: it must never be entered
 * after sv2_tp_stop returned, and (--gil-check) a push from another thread must complete
 * while it runs, i.e. the library does not hold Python's GIL across the callback.
 * --fake-stop makes "stop" only mark the provider as stopped without calling sv2_tp_stop:
 * the control run that shows the after-stop check really fires.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sv2.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cb_cond = PTHREAD_COND_INITIALIZER;

static const char *datadir;
static Sv2Tp *tp;
static long callback_sleep_ms;
static int gil_check, stop_in_callback, fake_stop;
static uint8_t *callback_push;
static size_t callback_push_len;

static atomic_int stopped;       /* sv2_tp_stop returned (or --fake-stop said so) */
static atomic_int in_callback;   /* a callback is running right now */
static atomic_int violations;
static int entered;              /* callbacks entered (under cb_lock) */
static int gil_waiting, gil_released;

static void say(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&out_lock);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void violation(const char *what)
{
    atomic_fetch_add(&violations, 1);
    say("VIOLATION %s", what);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int count_blocks(void)
{
    char path[4096];
    DIR *d;
    struct dirent *e;
    int n = 0;
    snprintf(path, sizeof path, "%s/solved-blocks", datadir);
    d = opendir(path);
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".blk") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void on_solution(void *user, const uint8_t *block, size_t len)
{
    char header[161];
    int n, i;
    (void)user;
    if (atomic_load(&stopped))
        violation("callback entered after sv2_tp_stop returned");
    atomic_store(&in_callback, 1);
    for (i = 0; i < 80 && (size_t)i < len; i++)
        sprintf(header + 2 * i, "%02x", block[i]);
    header[2 * (len < 80 ? len : 80)] = '\0';
    pthread_mutex_lock(&cb_lock);
    n = ++entered;
    pthread_cond_broadcast(&cb_cond);
    pthread_mutex_unlock(&cb_lock);
    {
        /* library threads block SIGPIPE: a client hanging up must not kill this host,
           which leaves SIGPIPE at its default like most C programs */
        sigset_t mask;
        pthread_sigmask(SIG_BLOCK, NULL, &mask);
        say("solution %d len=%zu header=%s persisted=%d sigpipe_blocked=%d", n, len, header,
            count_blocks(), sigismember(&mask, SIGPIPE));
    }

    if (gil_check) {
        /* block here until the main thread's push went through: only possible if the
           library released the GIL while this C function runs */
        struct timespec until;
        int rc = 0;
        deadline_in(&until, 20000);
        pthread_mutex_lock(&cb_lock);
        gil_waiting = 1;
        pthread_cond_broadcast(&cb_cond);
        while (!gil_released && rc == 0)
            rc = pthread_cond_timedwait(&cb_cond, &cb_lock, &until);
        gil_waiting = 0;
        pthread_mutex_unlock(&cb_lock);
        if (!gil_released)
            violation("a push from another thread could not run while the callback ran");
        else
            say("callback saw the other thread's push complete");
    }
    if (stop_in_callback) {
        Sv2Status st = sv2_tp_stop(tp);
        say("stop-in-callback %s %s", sv2_status_name(st), st == SV2_OK ? "" : sv2_last_error());
        sv2_tp_free(tp); /* refused the same way: the handle must stay usable */
        say("free-in-callback port=%u", (unsigned)sv2_tp_port(tp));
    }
    if (callback_push) {
        Sv2Status st = sv2_tp_push_template(tp, callback_push, callback_push_len);
        say("push-from-callback %s %s", sv2_status_name(st), st == SV2_OK ? "" : sv2_last_error());
    }
    if (callback_sleep_ms)
        sleep_ms(callback_sleep_ms);
    atomic_store(&in_callback, 0);
    if (atomic_load(&stopped))
        violation("callback still running after sv2_tp_stop returned");
}

static uint8_t *unhex(const char *s, size_t *len)
{
    size_t n = strlen(s) / 2, i;
    uint8_t *out = malloc(n ? n : 1);
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            free(out);
            return NULL;
        }
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    fclose(f);
    return buf;
}

static void push_hex(const char *hex)
{
    size_t len;
    uint8_t *block = unhex(hex, &len);
    Sv2Status st;
    if (!block) {
        say("push error bad-hex");
        return;
    }
    st = sv2_tp_push_template(tp, block, len);
    free(block);
    if (st == SV2_OK)
        say("push ok");
    else
        say("push error %s %s", sv2_status_name(st), sv2_last_error());
}

static int wait_entered(int at_least, long ms)
{
    struct timespec until;
    int rc = 0, ok;
    deadline_in(&until, ms);
    pthread_mutex_lock(&cb_lock);
    while (entered < at_least && rc == 0)
        rc = pthread_cond_timedwait(&cb_cond, &cb_lock, &until);
    ok = entered >= at_least;
    pthread_mutex_unlock(&cb_lock);
    return ok;
}

static void report(const char *name, Sv2Status st)
{
    say("misuse %s %s %s", name, sv2_status_name(st), st == SV2_OK ? "" : sv2_last_error());
}

static void report_new(const char *name, const Sv2TpConfig *cfg)
{
    Sv2Tp *t = sv2_tp_new(cfg);
    say("misuse %s %s %s", name, t ? "handle" : "NULL", t ? "" : sv2_last_error());
    sv2_tp_free(t);
}

/* NULLs, bad configs, stale and foreign handles, small buffers, a busy port: every one
   must be a status code with a message, never a crash */
static void misuse(void)
{
    Sv2TpConfig cfg;
    Sv2Tp *other;
    Sv2Decoder *dec;
    char small[8];
    uint8_t junk[3] = {1, 2, 3};

    report_new("new_null", NULL);
    memset(&cfg, 0, sizeof cfg);
    cfg.datadir = datadir;
    report_new("new_no_network", &cfg);
    cfg.network = "bitcoin";
    report_new("new_bad_network", &cfg);
    cfg.network = "regtest";
    cfg.datadir = NULL;
    report_new("new_no_datadir", &cfg);
    cfg.datadir = "/proc/self/nonexistent/sv2";
    report_new("new_bad_datadir", &cfg);

    report("start_twice", sv2_tp_start(tp));
    cfg.datadir = datadir;
    cfg.port = sv2_tp_port(tp);
    other = sv2_tp_new(&cfg);
    report("start_busy_port", sv2_tp_start(other));
    report("start_after_failure", sv2_tp_start(other));
    sv2_tp_free(other);
    report("push_freed_handle", sv2_tp_push_template(other, junk, sizeof junk));

    report("push_null_handle", sv2_tp_push_template(NULL, junk, sizeof junk));
    report("push_null_block", sv2_tp_push_template(tp, NULL, 5));
    report("push_empty", sv2_tp_push_template(tp, junk, 0));
    report("pubkey_small_buffer", sv2_tp_authority_pubkey(tp, small, sizeof small));
    report("pubkey_null_out", sv2_tp_authority_pubkey(tp, NULL, 64));
    report("stop_null", sv2_tp_stop(NULL));
    sv2_tp_free(NULL);
    say("misuse port_null %u", (unsigned)sv2_tp_port(NULL));
    report("push_dangling", sv2_tp_push_template((Sv2Tp *)(uintptr_t)0x7fff0, junk, 3));
    dec = sv2_decoder_new();
    report("push_decoder_handle", sv2_tp_push_template((Sv2Tp *)(void *)dec, junk, 3));
    sv2_decoder_free(dec);
    say("misuse done");
}

int main(int argc, char **argv)
{
    Sv2TpConfig cfg;
    char key[SV2_AUTHORITY_PUBKEY_TEXT_SIZE];
    char *line = NULL;
    size_t cap = 0;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: tp_embed DATADIR [options]\n");
        return 2;
    }
    datadir = argv[1];
    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--callback-sleep-ms") == 0 && i + 1 < argc)
            callback_sleep_ms = atol(argv[++i]);
        else if (strcmp(argv[i], "--gil-check") == 0)
            gil_check = 1;
        else if (strcmp(argv[i], "--stop-in-callback") == 0)
            stop_in_callback = 1;
        else if (strcmp(argv[i], "--fake-stop") == 0)
            fake_stop = 1;
        else if (strcmp(argv[i], "--push-from-callback") == 0 && i + 1 < argc) {
            char *hex = read_file(argv[++i]);
            callback_push = hex ? unhex(hex, &callback_push_len) : NULL;
            free(hex);
            if (!callback_push) {
                fprintf(stderr, "cannot read %s\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }

    memset(&cfg, 0, sizeof cfg);
    cfg.network = "regtest";
    cfg.datadir = datadir;
    cfg.fee_delta = 1000;
    cfg.template_interval_ms = 100;
    cfg.on_solution = on_solution;
    tp = sv2_tp_new(&cfg);
    if (!tp) {
        fprintf(stderr, "sv2_tp_new: %s\n", sv2_last_error());
        return 1;
    }
    if (sv2_tp_authority_pubkey(tp, key, sizeof key) != SV2_OK ||
        sv2_tp_start(tp) != SV2_OK) {
        fprintf(stderr, "start: %s\n", sv2_last_error());
        return 1;
    }
    say("listening %u", (unsigned)sv2_tp_port(tp));
    say("authority %s", key);

    while (getline(&line, &cap, stdin) > 0) {
        char *arg;
        line[strcspn(line, "\r\n")] = '\0';
        arg = strchr(line, ' ');
        if (arg)
            *arg++ = '\0';
        if (strcmp(line, "push") == 0 && arg) {
            push_hex(arg);
        } else if (strcmp(line, "wait-callback") == 0) {
            say(wait_entered(1, 30000) ? "callback entered" : "no callback within 30 s");
        } else if (strcmp(line, "push-during-callback") == 0 && arg) {
            struct timespec until;
            int rc = 0, waiting;
            deadline_in(&until, 30000);
            pthread_mutex_lock(&cb_lock);
            while (!gil_waiting && rc == 0)
                rc = pthread_cond_timedwait(&cb_cond, &cb_lock, &until);
            waiting = gil_waiting;
            pthread_mutex_unlock(&cb_lock);
            if (!waiting) {
                say("no callback waiting within 30 s");
                continue;
            }
            push_hex(arg);
            pthread_mutex_lock(&cb_lock);
            gil_released = 1;
            pthread_cond_broadcast(&cb_cond);
            pthread_mutex_unlock(&cb_lock);
        } else if (strcmp(line, "stop") == 0) {
            Sv2Status st = fake_stop ? SV2_OK : sv2_tp_stop(tp);
            int running = atomic_load(&in_callback);
            atomic_store(&stopped, 1);
            if (running && !fake_stop)
                violation("sv2_tp_stop returned while a callback was running");
            pthread_mutex_lock(&cb_lock);
            say("stopped %s running_at_return=%d callbacks=%d", sv2_status_name(st), running,
                entered);
            pthread_mutex_unlock(&cb_lock);
            if (st != SV2_OK)
                say("stop error %s", sv2_last_error());
        } else if (strcmp(line, "free") == 0) {
            sv2_tp_free(tp);
            atomic_store(&stopped, 1);
            say("freed");
        } else if (strcmp(line, "misuse") == 0) {
            misuse();
        } else if (strcmp(line, "sleep") == 0 && arg) {
            sleep_ms(atol(arg));
        } else if (strcmp(line, "quit") == 0) {
            break;
        } else {
            say("unknown command %s", line);
        }
    }
    free(line);
    free(callback_push);
    say("exit violations=%d", atomic_load(&violations));
    return atomic_load(&violations) ? 3 : 0;
}

/* sv2ffi._fanout: a new tip's frames sealed and written to every client in one C pass.
 *
 * Why this exists: at a new block the TP sends the same plaintext (a future NewTemplate and
 * its SetNewPrevHash) to every client, each under its own Noise key and nonce.  In Python a
 * client costs four AEAD calls, the bytes' joins and an asyncio transport write (about
 * 20 us); the kernel's own share of a loopback send is about 5 us.  With 1,000 clients that
 * difference is the issue-10 budget (every client within 25 ms).  Here a client costs one
 * OpenSSL ChaCha20-Poly1305 seal per unit (the same library the `cryptography` package
 * uses) and one non-blocking send(2).
 *
 * Contract (the caller, sv2ffi/fanout.py, checks everything Python knows better):
 *   seal_send(units, targets, threads=0) -> list
 *     units:   tuple of bytes, each one AEAD message in wire order (a frame's 6-byte header
 *              and, when not empty, its payload of at most 65,519 bytes); at most 64.
 *     targets: list of (fd, key, nonce): a connected non-blocking stream socket whose
 *              user-space write buffer is empty, the 32-byte sending key, the first nonce
 *              (the caller has checked that nonce + len(units) stays below 2^64-1).
 *     threads: at most this many threads for the pass (0: up to MAX_THREADS).
 *   For each target: None (every byte written), bytes (what the socket did not
 *   take: the caller queues it on its transport), or an int errno (the socket failed; the
 *   caller drops the client).  The nonce of every target advances by len(units) whatever
 *   the outcome, as the ciphertext exists either way.
 *
 * A pass over many clients is shared by a few threads (see PAR_MIN), each taking the
 * next CHUNK clients until none is left: with 100 or more clients the pass is mostly the
 * kernel's loopback send (10-25 us a client on the 2-core VM of issue 10), which one core
 * cannot do faster.  The clients are then written in about the list's order, not exactly
 * in it.  A thread that starts late (a vCPU woken) only takes fewer clients.
 *
 * The calling thread holds the GIL for the pass: it is short (microseconds per client), and
 * a tip must not wait behind a pool thread that would take the interpreter back mid-pass;
 * the helpers touch no Python object (the units' and keys' bytes are read in place: the
 * caller's tuple and list hold them for the call, and bytes do not change). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "cpus.h"

#define KEY_LEN 32
#define TAG_LEN 16
#define NONCE_LEN 12
#define MAX_UNIT 65535 /* an SV2 Noise message: 65,519 plaintext bytes + 16 tag */
#define MAX_UNITS 64    /* a tip's pass has 4 (two frames' headers and payloads) */
/* Threads: one per PAR_MIN clients of the pass (so a second one from 96 clients), at most
 * MAX_THREADS, no more than the CPUs the process may use.  Measured on the 2-core VM of
 * issue 10 against a real bitcoin-node (benchmarks/tip_latency.py, 100 clients, 3,000-tx
 * mempool, this build against one with PAR_MIN 256 in the same runs, six invocations,
 * both column orders): a second thread brought the p99 from the node's tip signal from
 * 7.8-9.9 to 5.9-7.5 ms and the p50 from 3.8-4.5 to 3.3-3.6 in five of them, and was
 * behind in the sixth (7.5 against 6.4); medians of the six 6.5 against 8.1 ms (the
 * pass there is 2-4 ms of loopback sends, 25-35 us a client, while the node's own
 * threads wake up beside it).
 * benchmarks/tp.py (no node; the TP and the clients alone) found it a draw at 100
 * clients (slowest client 3.14 against 2.94 ms, p50 1.46 against 1.68, medians of three),
 * and at 1,000 a second thread shortened the pass (10.0 -> 7.7 ms for the pass alone over
 * loopback TCP). */
#define PAR_MIN 48
#define MAX_THREADS 4
#define CHUNK 4 /* clients a thread takes at a time */
#define HELPER_STACK (256 * 1024)

/* One pass's plaintext: every unit's bytes, read without the interpreter (the caller's
 * tuple holds them, and bytes do not change) */
typedef struct {
    const unsigned char *p[MAX_UNITS];
    int n[MAX_UNITS];
    Py_ssize_t count;
    size_t total; /* the sealed bytes per client */
} plain_t;

/* One client of a pass, and its outcome (``rest``: what its socket did not take) */
typedef struct {
    int fd;
    const unsigned char *key;
    uint64_t nonce;
    int err;
    size_t sent, len;
    unsigned char *rest;
} job_t;

typedef struct {
    const plain_t *plain;
    job_t *jobs;
    size_t njobs;
    size_t next; /* the next job not yet taken, shared by the pass's threads (atomic) */
} pass_t;

static int seal_all(EVP_CIPHER_CTX *ctx, const plain_t *pl, const unsigned char *key,
                    uint64_t nonce, unsigned char *out, size_t *out_len)
{
    unsigned char iv[NONCE_LEN];
    size_t pos = 0;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, NULL) != 1)
        return -1;
    for (Py_ssize_t i = 0; i < pl->count; i++) {
        int got = 0, fin = 0;
        uint64_t nn = nonce + (uint64_t)i;
        memset(iv, 0, 4);
        for (int b = 0; b < 8; b++)
            iv[4 + b] = (unsigned char)(nn >> (8 * b)); /* 00000000 || LE64(n) */
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
            EVP_EncryptUpdate(ctx, out + pos, &got, pl->p[i], pl->n[i]) != 1 ||
            EVP_EncryptFinal_ex(ctx, out + pos + got, &fin) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN,
                                out + pos + got + fin) != 1)
            return -1;
        pos += (size_t)(got + fin + TAG_LEN);
    }
    *out_len = pos;
    return 0;
}

static void seal_and_send(EVP_CIPHER_CTX *ctx, const plain_t *pl, unsigned char *buf,
                          job_t *j)
{
    if (seal_all(ctx, pl, j->key, j->nonce, buf, &j->len) != 0) {
        j->err = EPROTO; /* OpenSSL refused: that client is dropped, not the pass */
        return;
    }
    while (j->sent < j->len) {
        ssize_t w = send(j->fd, buf + j->sent, j->len - j->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w >= 0) {
            j->sent += (size_t)w;
        } else if (errno != EINTR) {
            j->err = errno;
            break;
        }
    }
    if (j->err == EAGAIN || j->err == EWOULDBLOCK) { /* the rest, for the transport */
        j->rest = malloc(j->len - j->sent);
        if (j->rest == NULL)
            j->err = ENOMEM; /* that client is dropped */
        else
            memcpy(j->rest, buf + j->sent, j->len - j->sent);
    }
}

/* ChaCha20-Poly1305, fetched from OpenSSL's provider once (module init): given the
 * legacy EVP_chacha20_poly1305() instead, OpenSSL 3 looks the cipher up in its provider
 * store at every context's init, locks and a property query on the way to a tip's first
 * send, where nothing is warm in the caches after a block (issue 10). */
static EVP_CIPHER *cipher;
/* The calling thread's context, kept between passes (freed when that thread ends); a
 * context per pass cost its allocation and init on every tip. */
static pthread_key_t ctx_key;

static EVP_CIPHER_CTX *new_ctx(void)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx != NULL && EVP_EncryptInit_ex(ctx, cipher, NULL, NULL, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

static void free_ctx(void *ctx)
{
    EVP_CIPHER_CTX_free(ctx);
}

/* This thread's kept context, made at its first pass; NULL if OpenSSL cannot make one. */
static EVP_CIPHER_CTX *kept_ctx(void)
{
    EVP_CIPHER_CTX *ctx = pthread_getspecific(ctx_key);
    if (ctx == NULL) {
        ctx = new_ctx();
        if (ctx != NULL && pthread_setspecific(ctx_key, ctx) != 0) {
            EVP_CIPHER_CTX_free(ctx);
            ctx = NULL;
        }
    }
    return ctx;
}

/* Take CHUNK clients at a time until none is left, with this thread's cipher context and
 * buffer. */
static void take_clients(pass_t *ps, EVP_CIPHER_CTX *ctx, unsigned char *buf)
{
    for (;;) {
        size_t i = __atomic_fetch_add(&ps->next, CHUNK, __ATOMIC_RELAXED);
        if (i >= ps->njobs)
            return;
        size_t stop = i + CHUNK < ps->njobs ? i + CHUNK : ps->njobs;
        for (; i < stop; i++)
            seal_and_send(ctx, ps->plain, buf, &ps->jobs[i]);
    }
}

/* A helper thread: one that cannot get a context or a buffer takes nothing (the calling
 * thread, which has both, does its share). */
static void *helper_main(void *arg)
{
    pass_t *ps = arg;
    EVP_CIPHER_CTX *ctx = new_ctx();
    unsigned char *buf = malloc(ps->plain->total ? ps->plain->total : 1);
    if (ctx != NULL && buf != NULL)
        take_clients(ps, ctx, buf);
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    return NULL;
}

/* How many threads a pass over ``njobs`` clients uses: one per PAR_MIN clients, no more
 * than the CPUs this process may run on, nor ``limit`` (0: MAX_THREADS) */
static int threads_for(size_t njobs, long limit)
{
    long want = limit > 0 && limit < MAX_THREADS ? limit : MAX_THREADS;
    if ((long)(njobs / PAR_MIN) < want)
        want = (long)(njobs / PAR_MIN);
    if (want <= 1)
        return 1;
    int cpus = usable_cpus();
    return cpus < want ? (cpus < 1 ? 1 : cpus) : (int)want;
}

static PyObject *seal_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "seal_send(units, targets, threads=0) takes 2 or 3 arguments");
        return NULL;
    }
    PyObject *units = args[0], *targets = args[1];
    long limit = 0;
    if (nargs == 3) {
        limit = PyLong_Check(args[2]) ? PyLong_AsLong(args[2]) : -1;
        if (limit < 0) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "seal_send: threads is an int >= 0 (0: auto)");
            return NULL;
        }
    }
    if (!PyTuple_Check(units) || !PyList_Check(targets)) {
        PyErr_SetString(PyExc_TypeError, "seal_send: units must be a tuple of bytes, "
                                         "targets a list of (fd, key, nonce)");
        return NULL;
    }
    plain_t pl;
    pl.count = PyTuple_GET_SIZE(units);
    pl.total = 0;
    if (pl.count > MAX_UNITS) {
        PyErr_SetString(PyExc_ValueError, "seal_send: at most 64 units a pass");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < pl.count; i++) {
        PyObject *u = PyTuple_GET_ITEM(units, i);
        if (!PyBytes_Check(u) || PyBytes_GET_SIZE(u) > MAX_UNIT - TAG_LEN) {
            PyErr_SetString(PyExc_ValueError,
                            "seal_send: each unit is bytes of at most 65,519 bytes");
            return NULL;
        }
        pl.p[i] = (const unsigned char *)PyBytes_AS_STRING(u);
        pl.n[i] = (int)PyBytes_GET_SIZE(u);
        pl.total += (size_t)pl.n[i] + TAG_LEN;
    }
    Py_ssize_t nt = PyList_GET_SIZE(targets);
    job_t *jobs = PyMem_Calloc(nt ? (size_t)nt : 1, sizeof *jobs);
    if (jobs == NULL)
        return PyErr_NoMemory();
    /* check every target before writing to any: a bad one must not leave half a pass */
    for (Py_ssize_t t = 0; t < nt; t++) {
        PyObject *tg = PyList_GET_ITEM(targets, t);
        if (!PyTuple_Check(tg) || PyTuple_GET_SIZE(tg) != 3 ||
            !PyLong_Check(PyTuple_GET_ITEM(tg, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(tg, 1)) ||
            PyBytes_GET_SIZE(PyTuple_GET_ITEM(tg, 1)) != KEY_LEN ||
            !PyLong_Check(PyTuple_GET_ITEM(tg, 2))) {
            PyMem_Free(jobs);
            PyErr_SetString(PyExc_TypeError,
                            "seal_send: each target is (fd: int, key: 32 bytes, nonce: int)");
            return NULL;
        }
        long fd = PyLong_AsLong(PyTuple_GET_ITEM(tg, 0));
        unsigned long long nonce = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(tg, 2));
        if (PyErr_Occurred() || fd < 0 || fd > INT32_MAX ||
            nonce + (unsigned long long)pl.count < nonce) {
            PyMem_Free(jobs);
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "seal_send: an fd or nonce out of range");
            return NULL;
        }
        /* the key's bytes are the caller's (the targets list holds them for the call) */
        jobs[t].fd = (int)fd;
        jobs[t].key = (const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(tg, 1));
        jobs[t].nonce = (uint64_t)nonce;
    }
    PyObject *result = PyList_New(nt);
    if (result == NULL) {
        PyMem_Free(jobs);
        return NULL;
    }
    /* this thread's context and buffer first: without them no client is written to, and
     * the caller learns it before any nonce moved */
    unsigned char *buf = PyMem_Malloc(pl.total ? pl.total : 1);
    EVP_CIPHER_CTX *ctx = kept_ctx();
    if (buf == NULL || ctx == NULL) {
        PyMem_Free(buf);
        PyMem_Free(jobs);
        Py_DECREF(result);
        return buf == NULL ? PyErr_NoMemory()
                           : PyErr_Format(PyExc_RuntimeError, "OpenSSL: no ChaCha20-Poly1305");
    }
    /* From here on nothing raises: every target's outcome reaches the caller, to keep its
     * nonces right.  The interpreter stays held by this thread (a tip must not wait behind
     * a pool thread that takes it mid-pass); the helpers never touch a Python object. */
    pass_t ps = {&pl, jobs, (size_t)nt, 0};
    pthread_t helper[MAX_THREADS];
    int helpers = 0, want = threads_for((size_t)nt, limit) - 1;
    pthread_attr_t attr;
    if (want > 0 && pthread_attr_init(&attr) == 0) {
        pthread_attr_setstacksize(&attr, HELPER_STACK);
        while (helpers < want && pthread_create(&helper[helpers], &attr, helper_main, &ps) == 0)
            helpers++; /* a thread that cannot start: the others take its share */
        pthread_attr_destroy(&attr);
    }
    take_clients(&ps, ctx, buf); /* returns once every client is taken */
    for (int h = 0; h < helpers; h++)
        pthread_join(helper[h], NULL);
    PyMem_Free(buf);
    for (Py_ssize_t t = 0; t < nt; t++) {
        job_t *j = &jobs[t];
        PyObject *item;
        if (j->rest != NULL)
            item = PyBytes_FromStringAndSize((const char *)j->rest, (Py_ssize_t)(j->len - j->sent));
        else if (!j->err && j->sent == j->len)
            item = Py_NewRef(Py_None);
        else
            item = PyLong_FromLong(j->err);
        free(j->rest);
        if (item == NULL) { /* no memory for the remainder: that client is dropped */
            PyErr_Clear();
            item = PyLong_FromLong(ENOMEM); /* small ints are preallocated */
        }
        PyList_SET_ITEM(result, t, item);
    }
    PyMem_Free(jobs);
    return result;
}

static PyMethodDef methods[] = {
    {"seal_send", (PyCFunction)(void (*)(void))seal_send, METH_FASTCALL,
     "seal_send(units, targets, threads=0) -> list: seal the units for each target and send "
     "them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fanout",
    "A tip's frames sealed and written to many Noise clients in one C pass "
    "(see sv2ffi/fanout.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fanout(void)
{
    if (cipher == NULL) { /* both or neither: a failed import may be tried again */
        if (pthread_key_create(&ctx_key, free_ctx) != 0)
            return PyErr_Format(PyExc_ImportError, "sv2ffi._fanout: no thread key");
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
#else
        cipher = (EVP_CIPHER *)EVP_chacha20_poly1305();
#endif
        if (cipher == NULL) {
            pthread_key_delete(ctx_key);
            return PyErr_Format(PyExc_ImportError, "OpenSSL: no ChaCha20-Poly1305");
        }
    }
    return PyModule_Create(&module);
}

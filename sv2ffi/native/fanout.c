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
 *   seal_send(units, targets) -> list
 *     units:   tuple of bytes, each one AEAD message in wire order (a frame's 6-byte header
 *              and, when not empty, its payload of at most 65,519 bytes).
 *     targets: list of (fd, key, nonce): a connected non-blocking stream socket whose
 *              user-space write buffer is empty, the 32-byte sending key, the first nonce
 *              (the caller has checked that nonce + len(units) stays below 2^64-1).
 *   For each target, in order: None (every byte written), bytes (what the socket did not
 *   take: the caller queues it on its transport), or an int errno (the socket failed; the
 *   caller drops the client).  The nonce of every target advances by len(units) whatever
 *   the outcome, as the ciphertext exists either way.
 *
 * The GIL is held for the pass: it is short (microseconds per client), and a tip must not
 * wait behind a pool thread that would take the interpreter back mid-pass. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#define KEY_LEN 32
#define TAG_LEN 16
#define NONCE_LEN 12
#define MAX_UNIT 65535 /* an SV2 Noise message: 65,519 plaintext bytes + 16 tag */

static int seal_all(EVP_CIPHER_CTX *ctx, const unsigned char *key, uint64_t nonce,
                    PyObject *units, unsigned char *out, size_t *out_len)
{
    unsigned char iv[NONCE_LEN];
    size_t pos = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(units);
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, NULL) != 1)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *u = PyTuple_GET_ITEM(units, i);
        const unsigned char *pt = (const unsigned char *)PyBytes_AS_STRING(u);
        int len = (int)PyBytes_GET_SIZE(u), got = 0, fin = 0;
        uint64_t nn = nonce + (uint64_t)i;
        memset(iv, 0, 4);
        for (int b = 0; b < 8; b++)
            iv[4 + b] = (unsigned char)(nn >> (8 * b)); /* 00000000 || LE64(n) */
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
            EVP_EncryptUpdate(ctx, out + pos, &got, pt, len) != 1 ||
            EVP_EncryptFinal_ex(ctx, out + pos + got, &fin) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN,
                                out + pos + got + fin) != 1)
            return -1;
        pos += (size_t)(got + fin + TAG_LEN);
    }
    *out_len = pos;
    return 0;
}

static PyObject *seal_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "seal_send(units, targets) takes 2 arguments");
        return NULL;
    }
    PyObject *units = args[0], *targets = args[1];
    if (!PyTuple_Check(units) || !PyList_Check(targets)) {
        PyErr_SetString(PyExc_TypeError, "seal_send: units must be a tuple of bytes, "
                                         "targets a list of (fd, key, nonce)");
        return NULL;
    }
    size_t total = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(units); i++) {
        PyObject *u = PyTuple_GET_ITEM(units, i);
        if (!PyBytes_Check(u) || PyBytes_GET_SIZE(u) > MAX_UNIT - TAG_LEN) {
            PyErr_SetString(PyExc_ValueError,
                            "seal_send: each unit is bytes of at most 65,519 bytes");
            return NULL;
        }
        total += (size_t)PyBytes_GET_SIZE(u) + TAG_LEN;
    }
    Py_ssize_t nt = PyList_GET_SIZE(targets);
    /* check every target before writing to any: a bad one must not leave half a pass */
    for (Py_ssize_t t = 0; t < nt; t++) {
        PyObject *tg = PyList_GET_ITEM(targets, t);
        if (!PyTuple_Check(tg) || PyTuple_GET_SIZE(tg) != 3 ||
            !PyLong_Check(PyTuple_GET_ITEM(tg, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(tg, 1)) ||
            PyBytes_GET_SIZE(PyTuple_GET_ITEM(tg, 1)) != KEY_LEN ||
            !PyLong_Check(PyTuple_GET_ITEM(tg, 2))) {
            PyErr_SetString(PyExc_TypeError,
                            "seal_send: each target is (fd: int, key: 32 bytes, nonce: int)");
            return NULL;
        }
        long fd = PyLong_AsLong(PyTuple_GET_ITEM(tg, 0));
        unsigned long long nonce = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(tg, 2));
        if (PyErr_Occurred() || fd < 0 || fd > INT32_MAX ||
            nonce + (unsigned long long)PyTuple_GET_SIZE(units) < nonce) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "seal_send: an fd or nonce out of range");
            return NULL;
        }
    }
    PyObject *result = PyList_New(nt);
    if (result == NULL)
        return NULL;
    unsigned char *buf = PyMem_Malloc(total ? total : 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (buf == NULL || ctx == NULL ||
        EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1) {
        PyMem_Free(buf);
        EVP_CIPHER_CTX_free(ctx);
        Py_DECREF(result);
        return buf == NULL ? PyErr_NoMemory()
                           : PyErr_Format(PyExc_RuntimeError, "OpenSSL: no ChaCha20-Poly1305");
    }
    for (Py_ssize_t t = 0; t < nt; t++) {
        PyObject *tg = PyList_GET_ITEM(targets, t);
        /* from here on nothing raises: earlier targets have been written to, and the
         * caller must learn every target's outcome to keep its nonces right */
        long fd = PyLong_AsLong(PyTuple_GET_ITEM(tg, 0));
        uint64_t nonce = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(tg, 2));
        size_t len = 0, sent = 0;
        int err = 0;
        if (seal_all(ctx, (const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(tg, 1)),
                     nonce, units, buf, &len) != 0)
            err = EPROTO; /* OpenSSL refused: that client is dropped, not the pass */
        while (!err && sent < len) {
            ssize_t w = send((int)fd, buf + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w >= 0) {
                sent += (size_t)w;
            } else if (errno == EINTR) {
                continue;
            } else {
                err = errno;
                break;
            }
        }
        PyObject *item;
        if (!err && sent == len)
            item = Py_NewRef(Py_None);
        else if (err == EAGAIN || err == EWOULDBLOCK)
            item = PyBytes_FromStringAndSize((const char *)buf + sent, (Py_ssize_t)(len - sent));
        else
            item = PyLong_FromLong(err);
        if (item == NULL) { /* no memory for the remainder: that client is dropped */
            PyErr_Clear();
            item = PyLong_FromLong(ENOMEM); /* small ints are preallocated */
        }
        PyList_SET_ITEM(result, t, item);
    }
    EVP_CIPHER_CTX_free(ctx);
    PyMem_Free(buf);
    return result;
}

static PyMethodDef methods[] = {
    {"seal_send", (PyCFunction)(void (*)(void))seal_send, METH_FASTCALL,
     "seal_send(units, targets) -> list: seal the units for each target and send them."},
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
    return PyModule_Create(&module);
}

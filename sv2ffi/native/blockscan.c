/* sv2ffi._blockscan: a serialized block's transactions found from their lengths, in C.
 *
 * Why this exists: the IPC source gets each template from the node as a whole block
 * (getBlock) and the C ABI's sv2_tp_push_template as well.  Most transactions were in the
 * previous template, and one whose bytes (its wtxid) are already held needs no parse; but
 * finding where each transaction ends, and hashing it, cost 16 ms in Python for 3,000
 * transactions (issue 10's full-template budget).  Here it is one pass over the bytes.
 *
 *   block_transactions(block: bytes) -> list of (raw: bytes, spends: list[bytes], wtxid: bytes)
 *
 * ``spends`` are the 32-byte txids the inputs spend, ``wtxid`` is SHA256d of ``raw``.  No
 * script is decoded and no canonical-form check is made (the caller parses every
 * transaction it does not already hold, and compares the parse with ``spends``).  Raises
 * ValueError, with what is wrong, when the lengths do not add up to the block exactly.
 * sv2ffi/bitcoin.py has the same scan in Python (used without this module; the reference
 * in tests/test_bitcoin.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "sha256d.h"

typedef struct {
    const unsigned char *b;
    size_t size, pos;
    const char *err;
} scan_t;

/* a CompactSize (no canonical-form check) */
static int size_at(scan_t *s, uint64_t *out)
{
    if (s->pos >= s->size) {
        s->err = "the block ends inside a transaction";
        return -1;
    }
    unsigned first = s->b[s->pos];
    if (first < 0xFD) {
        *out = first;
        s->pos += 1;
        return 0;
    }
    size_t w = first == 0xFD ? 2 : first == 0xFE ? 4 : 8;
    if (s->size - s->pos < 1 + w) {
        s->err = "the block ends inside a transaction";
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++)
        v |= (uint64_t)s->b[s->pos + 1 + i] << (8 * i);
    *out = v;
    s->pos += 1 + w;
    return 0;
}

static int skip(scan_t *s, uint64_t n)
{
    if (n > s->size - s->pos) {
        s->err = "a transaction runs past the end of the block";
        return -1;
    }
    s->pos += (size_t)n;
    return 0;
}

/* one transaction from s->pos; its spends appended to ``spends`` */
static int scan_tx(scan_t *s, PyObject *spends)
{
    uint64_t n_in, n_out, len;
    if (skip(s, 4) != 0) /* version */
        return -1;
    if (s->pos >= s->size) {
        s->err = "the block ends inside a transaction";
        return -1;
    }
    int segwit = s->b[s->pos] == 0;
    if (segwit && skip(s, 2) != 0) /* marker and flag */
        return -1;
    if (size_at(s, &n_in) != 0)
        return -1;
    for (uint64_t i = 0; i < n_in; i++) {
        if (s->size - s->pos < 36) {
            s->err = "the block ends inside a transaction";
            return -1;
        }
        PyObject *txid = PyBytes_FromStringAndSize((const char *)s->b + s->pos, 32);
        if (txid == NULL || PyList_Append(spends, txid) != 0) {
            Py_XDECREF(txid);
            return -2;
        }
        Py_DECREF(txid);
        s->pos += 36; /* prevout */
        if (size_at(s, &len) != 0 || skip(s, len) != 0 || skip(s, 4) != 0)
            return -1; /* scriptSig, sequence */
    }
    if (size_at(s, &n_out) != 0)
        return -1;
    for (uint64_t i = 0; i < n_out; i++)
        if (skip(s, 8) != 0 || size_at(s, &len) != 0 || skip(s, len) != 0)
            return -1; /* value, scriptPubKey */
    if (segwit) {
        for (uint64_t i = 0; i < n_in; i++) {
            uint64_t items;
            if (size_at(s, &items) != 0)
                return -1;
            for (uint64_t k = 0; k < items; k++)
                if (size_at(s, &len) != 0 || skip(s, len) != 0)
                    return -1;
        }
    }
    return skip(s, 4); /* locktime */
}

static PyObject *block_transactions(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0)
        return NULL;
    scan_t s = {view.buf, (size_t)view.len, 80, NULL};
    PyObject *out = PyList_New(0);
    uint64_t n = 0;
    int rc = out == NULL ? -2 : (s.size < 80 ? (s.err = "the block ends inside its header", -1)
                                             : size_at(&s, &n));
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        size_t start = s.pos;
        PyObject *spends = PyList_New(0);
        if (spends == NULL) {
            rc = -2;
            break;
        }
        rc = scan_tx(&s, spends);
        if (rc != 0) {
            Py_DECREF(spends);
            break;
        }
        unsigned char wtxid[32];
        sha256d(s.b + start, s.pos - start, wtxid);
        PyObject *item = Py_BuildValue("(y#Ny#)", (const char *)s.b + start,
                                       (Py_ssize_t)(s.pos - start), spends,
                                       (const char *)wtxid, (Py_ssize_t)32);
        if (item == NULL || PyList_Append(out, item) != 0) {
            Py_XDECREF(item);
            rc = -2;
            break;
        }
        Py_DECREF(item);
    }
    if (rc == 0 && s.pos != s.size) {
        PyErr_Format(PyExc_ValueError, "%zu bytes after the block's last transaction",
                     s.size - s.pos);
        rc = -2;
    } else if (rc == -1) {
        PyErr_SetString(PyExc_ValueError, s.err);
    }
    PyBuffer_Release(&view);
    if (rc != 0) {
        Py_XDECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"block_transactions", block_transactions, METH_O,
     "block_transactions(block) -> [(raw, spends, wtxid)]: a block's transactions by length."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_blockscan",
    "A serialized block's transactions found from their lengths (see sv2ffi/bitcoin.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__blockscan(void)
{
    return sha256d_init() == 0 ? PyModule_Create(&module) : NULL;
}

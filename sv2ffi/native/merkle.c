/* sv2ffi._merkle: Bitcoin's merkle trees with OpenSSL's SHA-256.
 *
 * Why this exists: a full template's work needs two trees over every transaction (the
 * coinbase's merkle path over the txids, the witness root over the wtxids).  Through
 * hashlib each inner node costs a bytes concatenation and two hashlib calls, about 1.5 us,
 * so 3,000 transactions cost about 9 ms of the time between the node's template and the
 * clients' NewTemplate (issue 10).  Here a level's nodes are hashed in one call
 * (sha256d.h's sha256d64: two at a time on the CPU's SHA extensions where it has them,
 * OpenSSL's SHA-256 otherwise).
 *
 *   merkle_root(leaves: bytes, count: int) -> bytes          (32 bytes)
 *   coinbase_merkle_path(txids: bytes, count: int) -> list   (of 32-byte bytes)
 *
 * ``leaves``/``txids`` are ``count`` 32-byte hashes back to back (the callers join a
 * sequence of 32-byte hashes; the total length is checked against the count).  The rules are
 * Bitcoin's: a level with an odd number of nodes pairs its last node with itself; the
 * coinbase path lists the coinbase leaf's siblings, leaf level first, for a tree whose
 * first leaf is the coinbase (a placeholder: it never influences its own siblings).
 * sv2ffi/bitcoin.py keeps the same functions in Python, used without this module and as
 * the reference in tests/test_merkle_native.py. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "sha256d.h"

/* One level up, in place: ``n`` nodes at ``buf`` -> (n + 1) / 2 nodes at ``buf``. */
static Py_ssize_t reduce_level(unsigned char *buf, Py_ssize_t n)
{
    if (n & 1) {
        memcpy(buf + 32 * n, buf + 32 * (n - 1), 32); /* the buffer has room for one more */
        n++;
    }
    sha256d64(buf, buf, (size_t)n / 2);
    return n / 2;
}

static int parse(PyObject *const *args, Py_ssize_t nargs, const char *name,
                 Py_buffer *view, Py_ssize_t *count)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s(hashes, count) takes 2 arguments", name);
        return -1;
    }
    *count = PyLong_AsSsize_t(args[1]);
    if (*count == -1 && PyErr_Occurred())
        return -1;
    if (PyObject_GetBuffer(args[0], view, PyBUF_SIMPLE) != 0)
        return -1;
    if (*count < 0 || *count > PY_SSIZE_T_MAX / 64 - 2 || view->len != 32 * *count) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes are not %zd 32-byte hashes", name,
                     view->len, *count);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *merkle_root(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t n;
    if (parse(args, nargs, "merkle_root", &view, &n) != 0)
        return NULL;
    if (n == 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "merkle root of nothing");
        return NULL;
    }
    unsigned char *buf = PyMem_Malloc((size_t)(n + 1) * 32);
    if (buf == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    memcpy(buf, view.buf, (size_t)n * 32);
    PyBuffer_Release(&view);
    while (n > 1)
        n = reduce_level(buf, n);
    PyObject *out = PyBytes_FromStringAndSize((const char *)buf, 32);
    PyMem_Free(buf);
    return out;
}

static PyObject *coinbase_merkle_path(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t n;
    if (parse(args, nargs, "coinbase_merkle_path", &view, &n) != 0)
        return NULL;
    n += 1; /* the coinbase placeholder first */
    unsigned char *buf = PyMem_Calloc((size_t)(n + 1), 32);
    if (buf == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    memcpy(buf + 32, view.buf, (size_t)(n - 1) * 32);
    PyBuffer_Release(&view);
    PyObject *path = PyList_New(0);
    while (path != NULL && n > 1) {
        if (n & 1) {
            memcpy(buf + 32 * n, buf + 32 * (n - 1), 32);
            n++;
        }
        PyObject *sib = PyBytes_FromStringAndSize((const char *)buf + 32, 32);
        if (sib == NULL || PyList_Append(path, sib) != 0) {
            Py_XDECREF(sib);
            Py_CLEAR(path);
            break;
        }
        Py_DECREF(sib);
        n = reduce_level(buf, n);
    }
    PyMem_Free(buf);
    return path;
}

static PyObject *sha256d_road(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(sha256d64_road());
}

static PyMethodDef methods[] = {
    {"sha256d_road", sha256d_road, METH_NOARGS,
     "sha256d_road() -> str: what hashes the trees' nodes (sha256d.h's sha256d64)."},
    {"merkle_root", (PyCFunction)(void (*)(void))merkle_root, METH_FASTCALL,
     "merkle_root(hashes, count) -> bytes: Bitcoin's merkle root of count 32-byte hashes."},
    {"coinbase_merkle_path", (PyCFunction)(void (*)(void))coinbase_merkle_path, METH_FASTCALL,
     "coinbase_merkle_path(txids, count) -> list: the coinbase leaf's siblings, leaf first."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_merkle",
    "Bitcoin's merkle trees with OpenSSL's SHA-256 (see sv2ffi/bitcoin.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__merkle(void)
{
    return sha256d_init() == 0 ? PyModule_Create(&module) : NULL;
}

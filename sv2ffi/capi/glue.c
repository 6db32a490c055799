/* glue.c: the hand-written C part of libsv2.
 *
 * What must not need Python lives here: the ABI version, the thread-local last error
 * (the C codec, sv2_codec.c, and the Python side both set it), and starting the
 * embedded interpreter, which only connections, keys and the embedded template provider
 * need: the codec is C.
 *
 * Why start Python here instead of letting cffi do it: cffi calls Py_InitializeEx(0),
 * which derives sys.prefix from whatever "python3" the host's PATH holds, sets the
 * process locale, and exits the host process when the standard library cannot be found.
 * Here Python is pre-initialised without touching the locale (UTF-8 mode), told that its
 * executable is the venv interpreter fixed at build time (so sys.prefix and
 * site-packages are that venv's; SV2FFI_PYTHONPATH replaces that venv with the
 * directories it lists), and a failure becomes an error status instead of exit().  If the host already runs Python (e.g. it loaded libsv2 through ctypes), that
 * interpreter is used as it is.
 */
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sv2_internal.h"

#ifndef SV2I_PYTHON_EXECUTABLE
#define SV2I_PYTHON_EXECUTABLE ""
#endif

#define ERROR_CAP 1024

static _Thread_local char last_error[ERROR_CAP];
static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static int python_usable;           /* written once inside start_once */
static char start_error[ERROR_CAP]; /* idem */
static atomic_int ready;            /* set by the init code once every export is bound */

static void copy_truncated(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        /* never cut a UTF-8 sequence in half */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void sv2i_set_error(const char *msg)
{
    copy_truncated(last_error, msg ? msg : "", ERROR_CAP);
}

void sv2i_mark_ready(void)
{
    atomic_store_explicit(&ready, 1, memory_order_release);
}

int sv2i_is_ready(void)
{
    return atomic_load_explicit(&ready, memory_order_acquire);
}

void sv2i_init_failed(void)
{
    sv2i_set_error("libsv2: the embedded Python could not load sv2ffi (its traceback went to "
                   "stderr); set SV2FFI_PYTHONPATH to the site-packages directory that holds "
                   "the sv2ffi package");
}

static void start_failed(const char *what, PyStatus status)
{
    snprintf(start_error, sizeof start_error, "libsv2: %s: %s%s%s", what,
             status.func ? status.func : "", status.func ? ": " : "",
             status.err_msg ? status.err_msg : "unknown error");
}

static void start_python(void)
{
    PyStatus status;
    PyPreConfig preconfig;
    PyConfig config;
    const char *env;

    if (Py_IsInitialized()) {
        python_usable = 1;
        return;
    }
    PyPreConfig_InitPythonConfig(&preconfig);
    preconfig.parse_argv = 0;
    preconfig.configure_locale = 0; /* the host's locale is the host's business */
    preconfig.coerce_c_locale = 0;
    preconfig.coerce_c_locale_warn = 0;
    preconfig.utf8_mode = 1;
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        start_failed("Python pre-initialisation failed", status);
        return;
    }
    PyConfig_InitPythonConfig(&config);
    config.parse_argv = 0;
    config.install_signal_handlers = 0; /* signals belong to the host */
    /* SV2FFI_PYTHONPATH replaces the build-time venv: the base interpreter starts
       without that venv's site-packages and the init code puts these directories first */
    env = getenv("SV2FFI_PYTHONPATH");
    if (SV2I_PYTHON_EXECUTABLE[0] && !(env && env[0])) {
        status = PyConfig_SetBytesString(&config, &config.program_name,
                                         SV2I_PYTHON_EXECUTABLE);
        if (PyStatus_Exception(status)) {
            PyConfig_Clear(&config);
            start_failed("Python configuration failed", status);
            return;
        }
    }
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        start_failed("Python did not start", status);
        return;
    }
    PyEval_SaveThread(); /* release the GIL: every call takes it for its own duration */
    python_usable = 1;
}

int sv2i_enter(void)
{
    if (sv2i_is_ready())
        return 1;
    pthread_once(&start_once, start_python);
    if (!python_usable) {
        sv2i_set_error(start_error);
        return 0;
    }
    return 1;
}

void *sv2i_alloc(size_t n)
{
    return malloc(n ? n : 1);
}

SV2I_EXPORT int sv2_abi_version(void)
{
    return SV2_ABI_VERSION;
}

SV2I_EXPORT const char *sv2_last_error(void)
{
    return last_error;
}



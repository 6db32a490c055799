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
 * Here Python is pre-initialised without touching the locale (UTF-8 mode) and without
 * reading the host's PYTHON* variables, told which interpreter it is (the venv the
 * library is installed in, found at run time: see locate_package; SV2FFI_PYTHONPATH
 * replaces it with the directories it lists), and a failure becomes an error status
 * instead of exit(). If the host already runs Python (e.g. it loaded libsv2 through
 * ctypes), that interpreter is used as it is.
 */
#define _GNU_SOURCE /* dladdr */
#include <Python.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sv2_internal.h"

#ifndef SV2I_PYTHON_EXECUTABLE
#define SV2I_PYTHON_EXECUTABLE ""
#endif
#ifndef SV2I_PYTHON_BASE_EXECUTABLE
#define SV2I_PYTHON_BASE_EXECUTABLE SV2I_PYTHON_EXECUTABLE
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

/* ---- where this library's Python is ----------------------------------------------------
 *
 * The library finds its own package at run time: dladdr() on one of its functions gives
 * the path of libsv2.so; an installed wheel has it at <site>/sv2ffi/lib/libsv2.so, so
 * <site> is the site-packages directory holding sv2ffi, and if <site>/../../.. has a
 * pyvenv.cfg it is a venv whose interpreter is started (its standard library, its
 * packages, wherever the venv now lives). Nothing from the build machine is needed then.
 * A library outside a package (a source build's stage directory) falls back to the paths
 * fixed at build time. */

static char found_site[PATH_MAX];    /* "" if the library is not inside an sv2ffi package */
static char found_program[PATH_MAX]; /* <venv>/bin/python3 when found_site is a venv's */

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* cut the last path component off, in place; 0 if there was none */
static int up(char *path)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    *slash = '\0';
    return 1;
}

static void locate_package(void)
{
    Dl_info info;
    char path[PATH_MAX], venv[PATH_MAX], cfg[PATH_MAX + 16];
    const char *base;
    int i;

    if (!dladdr((void *)&sv2_abi_version, &info) || !info.dli_fname)
        return;
    if (!realpath(info.dli_fname, path))
        return;
    /* .../<site>/sv2ffi/lib/libsv2.so */
    if (!up(path) || !up(path)) /* -> .../<site>/sv2ffi */
        return;
    base = strrchr(path, '/');
    if (!base || strcmp(base + 1, "sv2ffi") != 0 || !up(path))
        return;
    snprintf(found_site, sizeof found_site, "%s", path);
    /* <venv>/lib/pythonX.Y/site-packages */
    snprintf(venv, sizeof venv, "%s", path);
    for (i = 0; i < 3; i++)
        if (!up(venv))
            return;
    snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", venv);
    if (!is_file(cfg))
        return;
    snprintf(found_program, sizeof found_program, "%s/bin/python3", venv);
    if (!is_file(found_program))
        snprintf(found_program, sizeof found_program, "%s/bin/python", venv);
}

const char *sv2i_site_dir(void)
{
    return found_site;
}

static int set_string(PyConfig *config, wchar_t **field, const char *value)
{
    PyStatus status = PyConfig_SetBytesString(config, field, value);
    if (PyStatus_Exception(status)) {
        start_failed("Python configuration failed", status);
        return 0;
    }
    return 1;
}

static void start_python(void)
{
    PyStatus status;
    PyPreConfig preconfig;
    PyConfig config;
    const char *env, *program, *pythonpath = NULL, *alloc;

    if (Py_IsInitialized()) {
        python_usable = 1;
        return;
    }
    locate_package();
    PyPreConfig_InitPythonConfig(&preconfig);
    preconfig.parse_argv = 0;
    preconfig.use_environment = 0;  /* the host's PYTHON* variables are the host's */
    preconfig.configure_locale = 0; /* the host's locale is the host's business */
    preconfig.coerce_c_locale = 0;
    preconfig.coerce_c_locale_warn = 0;
    preconfig.utf8_mode = 1;
    alloc = getenv("PYTHONMALLOC"); /* the one exception: memory checkers need "malloc" */
    if (alloc && strcmp(alloc, "malloc") == 0)
        preconfig.allocator = PYMEM_ALLOCATOR_MALLOC;
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        start_failed("Python pre-initialisation failed", status);
        return;
    }
    PyConfig_InitPythonConfig(&config);
    config.parse_argv = 0;
    config.install_signal_handlers = 0; /* signals belong to the host */
    config.use_environment = 0;         /* no PYTHONPATH, PYTHONHOME, ... of the host */
    config.user_site_directory = 0;     /* nor the packages in its ~/.local */
    /* which interpreter: the venv the library is installed in; else the base interpreter
       it was built with (its site-packages dir put first); a source build: the build's */
    env = getenv("SV2FFI_PYTHONPATH");
    if (env && env[0]) {
        program = SV2I_PYTHON_BASE_EXECUTABLE;
        pythonpath = env; /* first on sys.path, before cffi imports _cffi_backend */
    } else if (found_program[0]) {
        program = found_program;
    } else if (found_site[0]) {
        program = SV2I_PYTHON_BASE_EXECUTABLE;
        pythonpath = found_site;
    } else {
        program = SV2I_PYTHON_EXECUTABLE;
    }
    if ((program[0] && !set_string(&config, &config.program_name, program)) ||
        (pythonpath && !set_string(&config, &config.pythonpath_env, pythonpath))) {
        PyConfig_Clear(&config);
        return;
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



/* How many CPUs this process may run on (its affinity mask), for the extension modules
 * in this folder that share work with a helper thread or a few (fanout.c, gbtscan.c):
 * a helper is worth starting only where it can run beside the calling thread.  1 when
 * the mask cannot be read.  Needs _GNU_SOURCE (Python.h defines it) before <sched.h>. */
#ifndef SV2FFI_NATIVE_CPUS_H
#define SV2FFI_NATIVE_CPUS_H

#include <sched.h>

static int usable_cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

#endif

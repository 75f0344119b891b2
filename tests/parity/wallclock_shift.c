/* LD_PRELOAD shim for tests/integration/test_parity_vectors.py: shifts the wall clock
 * (CLOCK_REALTIME and its variants, gettimeofday, time) of the process it is loaded into by
 * JWTG_WALLCLOCK_SHIFT seconds (signed). Envoy's jwt_authn and jwt-guard (Wasm host clock and
 * the native module) both read the wall clock, so one Envoy judges the upstream test vectors at
 * the time their tests assumed. Monotonic clocks are left alone: Envoy's timers keep working. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long shift_seconds(void) {
    static long long shift;
    static int read;
    if (!read) {
        const char *s = getenv("JWTG_WALLCLOCK_SHIFT");
        shift = s ? strtoll(s, NULL, 10) : 0;
        read = 1;
    }
    return shift;
}

static int is_wall(clockid_t id) {
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE
#ifdef CLOCK_TAI
        || id == CLOCK_TAI
#endif
        ;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && ts && is_wall(id)) ts->tv_sec += shift_seconds();
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    static int (*real)(struct timeval *, void *);
    if (!real) real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int r = real(tv, tz);
    if (r == 0 && tv) tv->tv_sec += shift_seconds();
    return r;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

// par.c: a small pool of sleeping helper threads for row-parallel loops (par.h).
//
// One loop runs at a time: the caller publishes it under the mutex and bumps the
// generation, helpers with an index below the loop's chunk count run their chunk, the
// last one to finish wakes the caller. A helper that wakes late for a loop it has no part
// in just waits for the next generation. A second thread calling par_for while a loop
// is running (nothing in disa does) runs its loop alone.
#include "disa/par.h"
#include "disa/blas.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

enum { MAX_HELPERS = 255 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    int want;     // threads par_for may use, the caller included; 0: OpenBLAS's count
    int started;  // helpers running
    unsigned long gen;
    par_fn fn;
    void *ctx;
    size_t n;
    int parts, remaining;
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0};

static atomic_int g_busy;
static _Thread_local int t_inside;  // in a chunk: nested loops run serially

static void bounds(size_t n, int part, int parts, size_t *lo, size_t *hi) {
    *lo = (size_t)((unsigned __int128)n * (unsigned)part / (unsigned)parts);
    *hi = (size_t)((unsigned __int128)n * (unsigned)(part + 1) / (unsigned)parts);
}

static void *helper(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned long seen = 0;
    t_inside = 1;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        while (P.gen == seen) pthread_cond_wait(&P.work, &P.mu);
        seen = P.gen;
        if (id >= P.parts) continue;
        par_fn fn = P.fn;
        void *ctx = P.ctx;
        size_t lo, hi;
        bounds(P.n, id, P.parts, &lo, &hi);
        pthread_mutex_unlock(&P.mu);
        fn(ctx, lo, hi);
        pthread_mutex_lock(&P.mu);
        if (--P.remaining == 0) pthread_cond_signal(&P.done);
    }
    return NULL;
}

// A forked child has only the thread that called fork: it must not wait for helpers it
// does not have. It starts its own on first use.
static void forget_helpers(void) {
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.work, NULL);
    pthread_cond_init(&P.done, NULL);
    P.started = 0;
    P.remaining = 0;
    atomic_store(&g_busy, 0);
}

static pthread_once_t g_atfork = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_helpers); }

void par_set_threads(int n) { P.want = n < 1 ? 1 : n > MAX_HELPERS + 1 ? MAX_HELPERS + 1 : n; }
int par_threads(void) {
    if (!P.want) par_set_threads(blas_get_threads());  // until blas_set_threads says otherwise
    return P.want;
}

void par_for(size_t n, size_t grain, par_fn fn, void *ctx) {
    if (grain < 1) grain = 1;
    size_t most = n / grain;
    int want = par_threads(), parts = most < (size_t)want ? (int)most : want;
    if (t_inside || parts < 2 || atomic_exchange(&g_busy, 1)) {
        fn(ctx, 0, n);
        return;
    }
    pthread_once(&g_atfork, register_atfork);
    pthread_mutex_lock(&P.mu);
    while (P.started < parts - 1) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &at, helper, (void *)(intptr_t)(P.started + 1)) == 0;
        pthread_attr_destroy(&at);
        if (!ok) break;  // fewer helpers: the caller's chunk grows
        P.started++;
    }
    if (parts > P.started + 1) parts = P.started + 1;
    P.fn = fn, P.ctx = ctx, P.n = n, P.parts = parts, P.remaining = parts - 1;
    P.gen++;
    pthread_cond_broadcast(&P.work);
    pthread_mutex_unlock(&P.mu);
    size_t lo, hi;
    bounds(n, 0, parts, &lo, &hi);
    t_inside = 1;
    fn(ctx, lo, hi);
    t_inside = 0;
    pthread_mutex_lock(&P.mu);
    while (P.remaining > 0) pthread_cond_wait(&P.done, &P.mu);
    pthread_mutex_unlock(&P.mu);
    atomic_store(&g_busy, 0);
}

// ----------------------------------------------------------------------------
// par_map

typedef struct map_ctx {
    par_map_fn run;
    char *out;
    const char *in;
    size_t out_size, in_size, n;
} map_ctx;

static void map_part(void *ctx, size_t lo, size_t hi) {
    const map_ctx *m = ctx;
    size_t a, b;
    par_block_range(m->n, lo, hi, &a, &b);
    m->run(m->out + a * m->out_size, m->in + a * m->in_size, b - a);
}

void par_map(void *out, size_t out_size, const void *in, size_t in_size, size_t n, size_t grain, par_map_fn run) {
    map_ctx m = {run, out, in, out_size, in_size, n};
    par_for(par_blocks(n), grain, map_part, &m);
}

/* threads.h - run the parts of one job in parallel on a small pool of the
 * build's own threads (POSIX threads; Win32 threads on Windows).
 *
 * pplx_run_parts(nparts, fn, ctx) calls fn(ctx, p) exactly once for every p
 * in [0, nparts) and returns when all are done.  Parts must be independent
 * (each writes only its own output) and must not touch Python.  The calling
 * thread takes parts too, in the same way as the pool's threads: whoever is
 * free takes the next part, so which thread runs a part varies, never what
 * it computes.  Returns how many parts pool threads ran.
 *
 * Why not OpenMP: a build then needs no OpenMP runtime (Apple clang and a
 * plain Debian clang have none, MSVC's is another one again), a wheel vendors
 * none, and none can meet a second OpenMP runtime in the same process
 * (torch's, faiss's), a known source of crashes and oversubscription.
 * Why a pool rather than threads started per call: starting and joining
 * them added 50-100 us to every call here (a search of 8192 codes, or of 8
 * queries x 100 rows, took 3-5x as long as with OpenMP); waking the pool's
 * adds about 10.
 *
 * The pool grows on demand to the most parts any call asked for, minus the
 * caller's, up to PPLX_POOL_MAX threads, which then wait on a condition
 * variable for the life of the process.  They do not spin: idle, they cost
 * no CPU, so they cannot starve another runtime's threads (OpenMP's spinning
 * workers do, on a busy machine).  The pool is static in this header, so one
 * per extension module that includes it (only _search does).
 * Concurrent callers share it; each takes its own parts as well, so no call
 * waits for another's.  Workers block every signal (a signal meant for the
 * process is handled by a Python thread).  After fork() the child starts
 * with an empty pool (pthread_atfork), so a child can search in parallel too.
 *
 * A thread that cannot be started (EAGAIN: a thread, memory or address-space
 * limit) is not an error: the pool stays smaller, down to none, and the
 * parts are run by fewer threads, the caller's at least: the same result,
 * later.  Each call tries again.
 */
#ifndef PPLX_THREADS_H
#define PPLX_THREADS_H

#include <stddef.h>

#ifndef PPLX_POOL_MAX
#define PPLX_POOL_MAX 1024
#endif

typedef void (*pplx_part_fn)(void *ctx, int part);

typedef struct pplx_job {
    pplx_part_fn fn;
    void *ctx;
    int nparts;
    int next;               /* the next part to take */
    int pending;            /* parts not finished */
    int helped;             /* parts pool threads took */
    struct pplx_job *link;  /* the next job in the queue of jobs with parts left to take */
} pplx_job;

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX  /* no min/max macros in the C that Cython generates around this */
#endif
#include <windows.h>
#define PPLX_THREADS_API "win32"
typedef SRWLOCK pplx_lock_t;
typedef CONDITION_VARIABLE pplx_cond_t;
#define PPLX_LOCK_INIT SRWLOCK_INIT
#define PPLX_COND_INIT CONDITION_VARIABLE_INIT
static void pplx_lock(pplx_lock_t *l) { AcquireSRWLockExclusive(l); }
static void pplx_unlock(pplx_lock_t *l) { ReleaseSRWLockExclusive(l); }
static void pplx_wait(pplx_cond_t *c, pplx_lock_t *l) { SleepConditionVariableSRW(c, l, INFINITE, 0); }
static void pplx_wake_one(pplx_cond_t *c) { WakeConditionVariable(c); }
static void pplx_wake_all(pplx_cond_t *c) { WakeAllConditionVariable(c); }
#else
#include <pthread.h>
#include <signal.h>
#define PPLX_THREADS_API "pthreads"
typedef pthread_mutex_t pplx_lock_t;
typedef pthread_cond_t pplx_cond_t;
#define PPLX_LOCK_INIT PTHREAD_MUTEX_INITIALIZER
#define PPLX_COND_INIT PTHREAD_COND_INITIALIZER
static void pplx_lock(pplx_lock_t *l) { pthread_mutex_lock(l); }
static void pplx_unlock(pplx_lock_t *l) { pthread_mutex_unlock(l); }
static void pplx_wait(pplx_cond_t *c, pplx_lock_t *l) { pthread_cond_wait(c, l); }
static void pplx_wake_one(pplx_cond_t *c) { pthread_cond_signal(c); }
static void pplx_wake_all(pplx_cond_t *c) { pthread_cond_broadcast(c); }
#endif

/* The pool.  Everything in it is read and written with `lock` held. */
static struct {
    pplx_lock_t lock;
    pplx_cond_t work;  /* workers wait here for a job */
    pplx_cond_t done;  /* callers wait here for their last parts */
    pplx_job *head, *tail;
    int workers;       /* threads in the pool */
    long refused;      /* thread starts that failed (or the testing hook refused) */
} pplx_pool = {PPLX_LOCK_INIT, PPLX_COND_INIT, PPLX_COND_INIT, NULL, NULL, 0, 0};

/* Testing hook: when >= 0, the pool may hold at most this many threads, as
 * if the system refused more.  Set it only while no job is running. */
static int pplx_threads_start_limit = -1;

/* Take the next part of `job` (which has one left), dropping the job from
 * the queue once its last part is taken. */
static int pplx_take(pplx_job *job) {
    int part = job->next++;
    if (job->next == job->nparts) {
        pplx_job **p = &pplx_pool.head, *prev = NULL;
        while (*p && *p != job) { prev = *p; p = &(*p)->link; }
        if (*p) {  /* queued (a job no pool thread could take is not) */
            *p = job->link;
            if (pplx_pool.tail == job) pplx_pool.tail = prev;
        }
    }
    return part;
}

static void pplx_worker_loop(void) {
    pplx_lock(&pplx_pool.lock);
    for (;;) {
        while (!pplx_pool.head) pplx_wait(&pplx_pool.work, &pplx_pool.lock);
        pplx_job *job = pplx_pool.head;
        int part = pplx_take(job);
        job->helped++;
        pplx_unlock(&pplx_pool.lock);
        job->fn(job->ctx, part);
        pplx_lock(&pplx_pool.lock);
        if (--job->pending == 0) pplx_wake_all(&pplx_pool.done);  /* its caller may return now */
    }
}

#if defined(_WIN32)
static DWORD WINAPI pplx_worker_main(LPVOID unused) {
    (void)unused;
    pplx_worker_loop();
    return 0;
}

static int pplx_worker_start(void) {
    HANDLE h = CreateThread(NULL, 0, pplx_worker_main, NULL, 0, NULL);
    if (!h) return 0;
    CloseHandle(h);  /* the thread runs on, for the life of the process */
    return 1;
}

static void pplx_pool_init(void) {}
#else
static void *pplx_worker_main(void *unused) {
    (void)unused;
    pplx_worker_loop();
    return NULL;
}

static int pplx_worker_start(void) {
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    if (pthread_attr_init(&attr)) return 0;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);  /* the new thread inherits the mask: it blocks every signal */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t, &attr, pplx_worker_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc == 0;
}

/* fork(): hold the lock across it, so the child gets a consistent pool, then
 * empty the child's (its threads were not copied; the jobs belong to threads
 * that were not either). */
static void pplx_fork_prepare(void) { pthread_mutex_lock(&pplx_pool.lock); }
static void pplx_fork_parent(void) { pthread_mutex_unlock(&pplx_pool.lock); }
static void pplx_fork_child(void) {
    pthread_mutex_init(&pplx_pool.lock, NULL);
    pthread_cond_init(&pplx_pool.work, NULL);
    pthread_cond_init(&pplx_pool.done, NULL);
    pplx_pool.head = pplx_pool.tail = NULL;
    pplx_pool.workers = 0;
}

static pthread_once_t pplx_pool_once = PTHREAD_ONCE_INIT;
static void pplx_pool_register(void) { pthread_atfork(pplx_fork_prepare, pplx_fork_parent, pplx_fork_child); }
static void pplx_pool_init(void) { pthread_once(&pplx_pool_once, pplx_pool_register); }
#endif

/* Grow the pool to `want` threads (at most PPLX_POOL_MAX); lock held. */
static void pplx_pool_grow(int want) {
    if (want > PPLX_POOL_MAX) want = PPLX_POOL_MAX;
    while (pplx_pool.workers < want) {
        int limited = pplx_threads_start_limit >= 0 && pplx_pool.workers >= pplx_threads_start_limit;
        if (limited || !pplx_worker_start()) {
            pplx_pool.refused++;
            return;
        }
        pplx_pool.workers++;
    }
}

static int pplx_run_parts(int nparts, pplx_part_fn fn, void *ctx) {
    if (nparts <= 1) {
        if (nparts == 1) fn(ctx, 0);
        return 0;
    }
    pplx_job job;
    job.fn = fn;
    job.ctx = ctx;
    job.nparts = nparts;
    job.next = 0;
    job.pending = nparts;
    job.helped = 0;
    job.link = NULL;
    pplx_pool_init();
    pplx_lock(&pplx_pool.lock);
    pplx_pool_grow(nparts - 1);
    if (pplx_pool.workers > 0) {
        if (pplx_pool.tail) pplx_pool.tail->link = &job;
        else pplx_pool.head = &job;
        pplx_pool.tail = &job;
        if (nparts - 1 >= pplx_pool.workers) pplx_wake_all(&pplx_pool.work);
        else for (int i = 0; i < nparts - 1; i++) pplx_wake_one(&pplx_pool.work);
    }
    for (;;) {
        if (job.next < nparts) {
            int part = pplx_take(&job);
            pplx_unlock(&pplx_pool.lock);
            fn(ctx, part);
            pplx_lock(&pplx_pool.lock);
            job.pending--;
        } else if (job.pending) {
            pplx_wait(&pplx_pool.done, &pplx_pool.lock);
        } else {
            break;
        }
    }
    int helped = job.helped;
    pplx_unlock(&pplx_pool.lock);
    return helped;
}

/* Threads in the pool and thread starts refused so far. */
static void pplx_threads_stats(int *workers, long *refused) {
    pplx_pool_init();
    pplx_lock(&pplx_pool.lock);
    *workers = pplx_pool.workers;
    *refused = pplx_pool.refused;
    pplx_unlock(&pplx_pool.lock);
}

#endif

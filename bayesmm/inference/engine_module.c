/* bayesmm.inference._engine: engine.c built as a Python extension module when bayesmm is
 * installed (setup.py), so that no compiler runs and no library is loaded from a cache folder
 * while a user works. ``addresses`` hands nutpie the addresses of engine.c's two C functions,
 * which have nutpie's signatures; ``sample`` runs bayesmm's own NUTS (hmc.c) on them. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "engine.c"
#include "hmc.c"

static PyObject *addresses(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("(KK)", (unsigned long long)(uintptr_t)&bayesmm_engine_logp,
                         (unsigned long long)(uintptr_t)&bayesmm_engine_expand);
}

/* A C-contiguous buffer of an object (a NumPy array) of the given item size, writable if asked. */
static int get_buffer(PyObject *object, Py_buffer *view, Py_ssize_t itemsize, Py_ssize_t items, int writable,
                      const char *name) {
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->itemsize != itemsize || view->len != itemsize * items) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes", name, items, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* sample(logp, expand, user_data, inits, seeds, chains, dim, n_expanded, draws, tune,
 *        target_accept, max_depth, threads, expanded, stats, progress) -> statuses: NUTS chains
 * (hmc.c) in ``threads`` threads without the GIL; every 50 ms the calling thread takes the GIL
 * to see whether a signal came (Ctrl-C: the chains stop and the signal's exception is raised)
 * and, every half second, to call ``progress`` (None, or a callable) with the iterations
 * each chain has done (an exception it raises stops the chains too). logp and expand: addresses of C
 * functions with nutpie's signatures (0: the engine's); user_data: their uint64 user data;
 * inits: chains x dim starting points; seeds: one uint64 per chain; expanded (chains x draws x
 * n_expanded) and stats (chains x draws x N_STATS): float64 arrays the draws are written to. */
static PyObject *sample(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long logp_address, expand_address;
    PyObject *user_obj, *inits_obj, *seeds_obj, *expanded_obj, *stats_obj, *progress_obj;
    long long chains, dim, n_expanded, draws, tune, max_depth, threads;
    double target_accept;
    if (!PyArg_ParseTuple(args, "KKOOOLLLLLdLLOOO", &logp_address, &expand_address, &user_obj, &inits_obj,
                          &seeds_obj, &chains, &dim, &n_expanded, &draws, &tune, &target_accept, &max_depth,
                          &threads, &expanded_obj, &stats_obj, &progress_obj))
        return NULL;
    if (chains < 1 || dim < 0 || n_expanded < 0 || draws < 0 || tune < 0 || max_depth < 1 || max_depth > 30 ||
        threads < 1 || !(target_accept > 0.0 && target_accept < 1.0)) {
        PyErr_SetString(PyExc_ValueError, "sample: invalid settings");
        return NULL;
    }
    Py_buffer user, inits, seeds, expanded, stats;
    PyObject *result = NULL;
    if (PyObject_GetBuffer(user_obj, &user, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (get_buffer(inits_obj, &inits, 8, chains * dim, 0, "inits") < 0) goto release_user;
    if (get_buffer(seeds_obj, &seeds, 8, chains, 0, "seeds") < 0) goto release_inits;
    if (get_buffer(expanded_obj, &expanded, 8, chains * draws * n_expanded, 1, "expanded") < 0) goto release_seeds;
    if (get_buffer(stats_obj, &stats, 8, chains * draws * N_STATS, 1, "stats") < 0) goto release_expanded;

    int64_t *status = calloc((size_t)chains, sizeof(int64_t));
    int64_t *progress = calloc((size_t)chains, sizeof(int64_t));
    pthread_t *workers = calloc((size_t)threads, sizeof(pthread_t));
    job_t job = {
        .logp = logp_address ? (logp_fn)(uintptr_t)logp_address : bayesmm_engine_logp,
        .expand = expand_address ? (expand_fn)(uintptr_t)expand_address : bayesmm_engine_expand,
        .user_data = user.buf, .dim = dim, .n_expanded = n_expanded, .draws = draws, .tune = tune,
        .max_depth = max_depth, .chains = chains, .target_accept = target_accept,
        .inits = (const double *)inits.buf, .seeds = (const uint64_t *)seeds.buf,
        .expanded = (double *)expanded.buf, .stats = (double *)stats.buf, .status = status,
        .progress = progress, .stop = 0, .next_chain = 0, .finished = 0,
    };
    if (!status || !progress || !workers) {
        PyErr_NoMemory();
        goto done;
    }
    pthread_mutex_init(&job.lock, NULL);
    pthread_cond_init(&job.done, NULL);
    long long started = 0;
    int interrupted = 0, polls = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; started < threads && started < chains; started++)
        if (pthread_create(&workers[started], NULL, chain_worker, &job) != 0) break;
    if (started == 0) run_all(&job); /* no thread could start: run here */
    pthread_mutex_lock(&job.lock);
    while (job.finished < started) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&job.done, &job.lock, &until);
        if (job.finished >= started) break;
        pthread_mutex_unlock(&job.lock);
        Py_BLOCK_THREADS
        if (!interrupted && PyErr_CheckSignals() < 0) interrupted = 1;
        if (!interrupted && progress_obj != Py_None && ++polls % 10 == 0) {
            PyObject *counts = PyTuple_New(chains);
            for (long long k = 0; counts && k < chains; k++)
                PyTuple_SET_ITEM(counts, k, PyLong_FromLongLong(__atomic_load_n(&progress[k], __ATOMIC_RELAXED)));
            PyObject *said = counts ? PyObject_CallOneArg(progress_obj, counts) : NULL;
            Py_XDECREF(counts);
            if (said == NULL) interrupted = 1;
            Py_XDECREF(said);
        }
        if (interrupted) job.stop = 1;
        Py_UNBLOCK_THREADS
        pthread_mutex_lock(&job.lock);
    }
    pthread_mutex_unlock(&job.lock);
    for (long long k = 0; k < started; k++) pthread_join(workers[k], NULL);
    Py_END_ALLOW_THREADS
    pthread_cond_destroy(&job.done);
    pthread_mutex_destroy(&job.lock);
    if (!interrupted) {
        result = PyList_New(chains);
        for (long long k = 0; result && k < chains; k++) PyList_SET_ITEM(result, k, PyLong_FromLongLong(status[k]));
    }
done:
    free(status);
    free(progress);
    free(workers);
    PyBuffer_Release(&stats);
release_expanded:
    PyBuffer_Release(&expanded);
release_seeds:
    PyBuffer_Release(&seeds);
release_inits:
    PyBuffer_Release(&inits);
release_user:
    PyBuffer_Release(&user);
    return result;
}

static PyMethodDef methods[] = {
    {"sample", sample, METH_VARARGS, "NUTS chains on a log-density given as a C function (hmc.c)."},
    {"addresses", addresses, METH_NOARGS,
     "The addresses of the engine's log-density (with gradient) and expansion functions, for nutpie."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT, "_engine",
    "bayesmm's engine: the log-density, gradient and expansion of a model given as a program, in C.", -1,
    methods,
};

/* FIELDS: the digest of the program format engine_fields.h describes (engine.fields_key), so
 * that Python never runs programs of another format through this build. */
PyMODINIT_FUNC PyInit__engine(void) {
    PyObject *module = PyModule_Create(&engine_module);
    if (module != NULL && PyModule_AddStringConstant(module, "FIELDS", ENGINE_FIELDS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

/* bayesmm's NUTS: the no-U-turn sampler with multinomial sampling of the trajectory and
 * the generalised U-turn criterion checked across the merged subtrees (Betancourt 2017,
 * "A conceptual introduction to Hamiltonian Monte Carlo", appendix A; Stan's base_nuts), a
 * diagonal metric adapted as nutpie adapts it (estimates from the draws and their gradients
 * over overlapping windows, from the first gradient on) and a step size by Stan's dual
 * averaging, on the engine's log-density (engine.c), so a chain runs in C from start to end
 * with no interpreter in it.
 *
 * One chain per thread; each draws from its own xoshiro256** generator seeded from
 * (seed, chain), so the same seed gives the same draws in every process and with any number
 * of threads. A chain writes each kept draw's expansion (every reported variable) and its
 * statistics (STATS below) into arrays the caller owns. */

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t (*logp_fn)(uint64_t, const double *, double *, double *, void *);
typedef int64_t (*expand_fn)(uint64_t, uint64_t, const double *, double *, void *);

/* The statistics of each kept draw, in this order. */
enum { S_LOGP, S_ENERGY, S_ENERGY_ERROR, S_ACCEPT, S_STEP, S_DEPTH, S_STEPS, S_DIVERGING, N_STATS };

#define MAX_DELTA_H 1000.0 /* an energy error above this is a divergence (Stan's, nutpie's) */

/* -- random numbers: xoshiro256** seeded by splitmix64 ------------------------------------ */

typedef struct {
    uint64_t s[4];
    int has_spare;
    double spare;
} rng_t;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (0xD1B54A32D192ED03ULL * (stream + 1));
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r) {
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform on (0, 1). */
static double rng_uniform(rng_t *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

/* Standard normal (Marsaglia's polar method). */
static double rng_normal(rng_t *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(r) - 1.0;
        v = 2.0 * rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

static double log_sum_exp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b;
    return m + log(exp(a - m) + exp(b - m));
}

/* -- one chain ---------------------------------------------------------------------------- */

typedef struct {
    double *q, *p, *g; /* position, momentum, gradient of the log-density */
    double logp;
} point_t;

/* What the chains share: the model and the settings. */
typedef struct {
    logp_fn logp;
    expand_fn expand;
    void *user_data;
    int64_t dim, n_expanded, draws, tune, max_depth, chains;
    double target_accept;
    const double *inits;    /* chains x dim */
    const uint64_t *seeds;  /* one per chain */
    double *expanded;       /* chains x draws x n_expanded */
    double *stats;          /* chains x draws x N_STATS */
    int64_t *status;        /* one per chain: 0, or what stopped it */
    int64_t *progress;      /* one per chain: its iterations done (tuning and draws) */
    volatile int stop;      /* set by the caller (an interrupt): every chain returns */
    int64_t next_chain, finished;
    pthread_mutex_t lock;
    pthread_cond_t done; /* signalled as each worker ends */
} job_t;

/* A point the trajectory may move to: its position, gradient, log-density and energy. */
typedef struct {
    double *q, *g;
    double logp, H;
} choice_t;

/* The NUTS state of one chain and its scratch. */
typedef struct {
    const job_t *job;
    int64_t dim;
    rng_t rng;
    double eps;
    double *minv;   /* the inverse metric (the posterior variances' estimate) */
    point_t z;      /* the integrator's point */
    double *level;  /* per tree depth: N_LEVEL vectors */
    choice_t here;  /* the chain's current point (a transition's start, then its draw) */
    choice_t propose;
    int divergent;
    int64_t n_leapfrog;
    double sum_metro_prob;
} chain_t;

enum {
    L_RHO_LEFT, L_RHO_RIGHT, L_SHARP_LEFT_END, L_SHARP_RIGHT_BEG, L_P_LEFT_END, L_P_RIGHT_BEG,
    L_Q_PROPOSE, L_G_PROPOSE, N_LEVEL
};

static double *level_vec(chain_t *c, int64_t depth, int which) {
    return c->level + ((size_t)depth * N_LEVEL + (size_t)which) * (size_t)c->dim;
}

/* The log-density and gradient at z.q; -inf where the engine fails (outside the support). */
static void evaluate(chain_t *c, point_t *z) {
    double logp = 0.0;
    if (c->job->logp((uint64_t)c->dim, z->q, z->g, &logp, c->job->user_data) != 0 || !isfinite(logp))
        logp = -INFINITY;
    z->logp = logp;
}

static double kinetic(const chain_t *c, const double *p) {
    double k = 0.0;
    for (int64_t i = 0; i < c->dim; i++) k += c->minv[i] * p[i] * p[i];
    return 0.5 * k;
}

/* The energy at the integrator's point; infinite outside the support. */
static double hamiltonian(const chain_t *c) {
    if (c->z.logp == -INFINITY) return INFINITY;
    double h = -c->z.logp + kinetic(c, c->z.p);
    return isnan(h) ? INFINITY : h;
}

static void draw_momentum(chain_t *c) {
    for (int64_t i = 0; i < c->dim; i++) c->z.p[i] = rng_normal(&c->rng) / sqrt(c->minv[i]);
}

static void leapfrog(chain_t *c, double eps) {
    point_t *z = &c->z;
    int64_t n = c->dim;
    for (int64_t i = 0; i < n; i++) z->p[i] += 0.5 * eps * z->g[i];
    for (int64_t i = 0; i < n; i++) z->q[i] += eps * c->minv[i] * z->p[i];
    evaluate(c, z);
    if (z->logp == -INFINITY) return; /* the gradient is not defined: the caller sees H = inf */
    for (int64_t i = 0; i < n; i++) z->p[i] += 0.5 * eps * z->g[i];
}

static void sharp(const chain_t *c, const double *p, double *out) {
    for (int64_t i = 0; i < c->dim; i++) out[i] = c->minv[i] * p[i];
}

/* The U-turn criterion between two ends whose sharp momenta are given, over rho. */
static int no_u_turn(const chain_t *c, const double *sharp_minus, const double *sharp_plus, const double *rho) {
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < c->dim; i++) {
        a += sharp_minus[i] * rho[i];
        b += sharp_plus[i] * rho[i];
    }
    return a > 0.0 && b > 0.0;
}

static void copy_vec(double *to, const double *from, int64_t n) { memcpy(to, from, (size_t)n * sizeof(double)); }

static void take_choice(choice_t *to, const choice_t *from, int64_t n) {
    copy_vec(to->q, from->q, n);
    copy_vec(to->g, from->g, n);
    to->logp = from->logp;
    to->H = from->H;
}

/* Stan's build_tree: a subtree of 2^depth leapfrog steps in direction sign from c->z;
 * ``propose`` its multinomial choice; returns whether it is valid (no divergence, no U-turn
 * inside it). rho gains the subtree's momenta. */
static int build_tree(chain_t *c, int64_t depth, choice_t *propose, double *sharp_beg, double *sharp_end,
                      double *rho, double *p_beg, double *p_end, double H0, double sign, double *log_sum_weight) {
    int64_t n = c->dim;
    if (depth == 0) {
        leapfrog(c, sign * c->eps);
        c->n_leapfrog++;
        double h = hamiltonian(c);
        if (h - H0 > MAX_DELTA_H) c->divergent = 1;
        *log_sum_weight = log_sum_exp(*log_sum_weight, H0 - h);
        c->sum_metro_prob += H0 - h > 0 ? 1.0 : exp(H0 - h);
        copy_vec(propose->q, c->z.q, n);
        copy_vec(propose->g, c->z.g, n);
        propose->logp = c->z.logp;
        propose->H = h;
        sharp(c, c->z.p, sharp_beg);
        copy_vec(sharp_end, sharp_beg, n);
        for (int64_t i = 0; i < n; i++) rho[i] += c->z.p[i];
        copy_vec(p_beg, c->z.p, n);
        copy_vec(p_end, c->z.p, n);
        return !c->divergent;
    }
    double *rho_left = level_vec(c, depth, L_RHO_LEFT), *rho_right = level_vec(c, depth, L_RHO_RIGHT);
    double *sharp_left_end = level_vec(c, depth, L_SHARP_LEFT_END);
    double *sharp_right_beg = level_vec(c, depth, L_SHARP_RIGHT_BEG);
    double *p_left_end = level_vec(c, depth, L_P_LEFT_END), *p_right_beg = level_vec(c, depth, L_P_RIGHT_BEG);
    choice_t right = {level_vec(c, depth, L_Q_PROPOSE), level_vec(c, depth, L_G_PROPOSE), 0.0, 0.0};
    memset(rho_left, 0, (size_t)n * sizeof(double));
    double lsw_left = -INFINITY;
    if (!build_tree(c, depth - 1, propose, sharp_beg, sharp_left_end, rho_left, p_beg, p_left_end, H0, sign,
                    &lsw_left))
        return 0;
    memset(rho_right, 0, (size_t)n * sizeof(double));
    double lsw_right = -INFINITY;
    if (!build_tree(c, depth - 1, &right, sharp_right_beg, sharp_end, rho_right, p_right_beg, p_end, H0, sign,
                    &lsw_right))
        return 0;
    double lsw_subtree = log_sum_exp(lsw_left, lsw_right);
    *log_sum_weight = log_sum_exp(*log_sum_weight, lsw_subtree);
    if (lsw_right > lsw_subtree || rng_uniform(&c->rng) < exp(lsw_right - lsw_subtree))
        take_choice(propose, &right, n);
    /* The criterion over the merged subtree, then across the seam between its halves (rho_left
     * holds the sums in turn). */
    for (int64_t i = 0; i < n; i++) rho_left[i] += rho_right[i];
    for (int64_t i = 0; i < n; i++) rho[i] += rho_left[i];
    int persist = no_u_turn(c, sharp_beg, sharp_end, rho_left);
    for (int64_t i = 0; i < n; i++) rho_left[i] = rho_left[i] - rho_right[i] + p_right_beg[i];
    persist = persist && no_u_turn(c, sharp_beg, sharp_right_beg, rho_left);
    for (int64_t i = 0; i < n; i++) rho_left[i] = rho_right[i] + p_left_end[i];
    persist = persist && no_u_turn(c, sharp_left_end, sharp_end, rho_left);
    return persist;
}

/* The ends of the whole trajectory and its sums of momenta, kept by the transition. */
typedef struct {
    double *q_fwd, *p_fwd, *g_fwd, *q_bck, *p_bck, *g_bck;
    double logp_fwd, logp_bck;
    double *sharp_fwd_fwd, *sharp_fwd_bck, *sharp_bck_fwd, *sharp_bck_bck;
    double *p_fwd_fwd, *p_fwd_bck, *p_bck_fwd, *p_bck_bck;
    double *rho, *rho_fwd, *rho_bck;
} ends_t;

static void load_point(chain_t *c, const double *q, const double *p, const double *g, double logp) {
    copy_vec(c->z.q, q, c->dim);
    copy_vec(c->z.p, p, c->dim);
    copy_vec(c->z.g, g, c->dim);
    c->z.logp = logp;
}

static void save_point(const chain_t *c, double *q, double *p, double *g, double *logp) {
    copy_vec(q, c->z.q, c->dim);
    copy_vec(p, c->z.p, c->dim);
    copy_vec(g, c->z.g, c->dim);
    *logp = c->z.logp;
}

/* One NUTS transition from c->here, which becomes the draw. Returns the tree depth. */
static int64_t transition(chain_t *c, ends_t *e, double *accept, double *energy_error) {
    int64_t n = c->dim;
    copy_vec(c->z.q, c->here.q, n);
    copy_vec(c->z.g, c->here.g, n);
    c->z.logp = c->here.logp;
    draw_momentum(c);
    double H0 = hamiltonian(c);
    c->here.H = H0;
    save_point(c, e->q_fwd, e->p_fwd, e->g_fwd, &e->logp_fwd);
    save_point(c, e->q_bck, e->p_bck, e->g_bck, &e->logp_bck);
    sharp(c, c->z.p, e->sharp_fwd_fwd);
    copy_vec(e->sharp_fwd_bck, e->sharp_fwd_fwd, n);
    copy_vec(e->sharp_bck_fwd, e->sharp_fwd_fwd, n);
    copy_vec(e->sharp_bck_bck, e->sharp_fwd_fwd, n);
    copy_vec(e->p_fwd_fwd, c->z.p, n);
    copy_vec(e->p_fwd_bck, c->z.p, n);
    copy_vec(e->p_bck_fwd, c->z.p, n);
    copy_vec(e->p_bck_bck, c->z.p, n);
    copy_vec(e->rho, c->z.p, n);
    double log_sum_weight = 0.0;
    c->n_leapfrog = 0;
    c->sum_metro_prob = 0.0;
    c->divergent = 0;
    int64_t depth = 0;
    while (depth < c->job->max_depth) {
        memset(e->rho_fwd, 0, (size_t)n * sizeof(double));
        memset(e->rho_bck, 0, (size_t)n * sizeof(double));
        double lsw_subtree = -INFINITY;
        int valid;
        if (rng_uniform(&c->rng) > 0.5) {
            load_point(c, e->q_fwd, e->p_fwd, e->g_fwd, e->logp_fwd);
            copy_vec(e->rho_bck, e->rho, n);
            copy_vec(e->p_bck_fwd, e->p_fwd_fwd, n); /* the old trajectory's forward end */
            copy_vec(e->sharp_bck_fwd, e->sharp_fwd_fwd, n);
            valid = build_tree(c, depth, &c->propose, e->sharp_fwd_bck, e->sharp_fwd_fwd, e->rho_fwd, e->p_fwd_bck,
                               e->p_fwd_fwd, H0, 1.0, &lsw_subtree);
            save_point(c, e->q_fwd, e->p_fwd, e->g_fwd, &e->logp_fwd);
        } else {
            load_point(c, e->q_bck, e->p_bck, e->g_bck, e->logp_bck);
            copy_vec(e->rho_fwd, e->rho, n);
            copy_vec(e->p_fwd_bck, e->p_bck_bck, n); /* the old trajectory's backward end */
            copy_vec(e->sharp_fwd_bck, e->sharp_bck_bck, n);
            valid = build_tree(c, depth, &c->propose, e->sharp_bck_fwd, e->sharp_bck_bck, e->rho_bck, e->p_bck_fwd,
                               e->p_bck_bck, H0, -1.0, &lsw_subtree);
            save_point(c, e->q_bck, e->p_bck, e->g_bck, &e->logp_bck);
        }
        if (!valid) break;
        depth++;
        if (lsw_subtree > log_sum_weight || rng_uniform(&c->rng) < exp(lsw_subtree - log_sum_weight))
            take_choice(&c->here, &c->propose, n);
        log_sum_weight = log_sum_exp(log_sum_weight, lsw_subtree);
        for (int64_t i = 0; i < n; i++) e->rho[i] = e->rho_bck[i] + e->rho_fwd[i];
        int persist = no_u_turn(c, e->sharp_bck_bck, e->sharp_fwd_fwd, e->rho);
        /* across the seam between the old trajectory and the new subtree (rho_fwd, rho_bck
         * are not needed again in this doubling, and rho_fwd = rho - rho_bck) */
        double *extended = e->rho_fwd;
        for (int64_t i = 0; i < n; i++) extended[i] = e->rho_bck[i] + e->p_fwd_bck[i];
        persist = persist && no_u_turn(c, e->sharp_bck_bck, e->sharp_fwd_bck, extended);
        for (int64_t i = 0; i < n; i++) extended[i] = e->rho[i] - e->rho_bck[i] + e->p_bck_fwd[i];
        persist = persist && no_u_turn(c, e->sharp_bck_fwd, e->sharp_fwd_fwd, extended);
        if (!persist) break;
    }
    *accept = c->n_leapfrog ? c->sum_metro_prob / (double)c->n_leapfrog : 0.0;
    *energy_error = c->here.H - H0;
    return depth;
}

/* Stan's heuristic: double or halve the step until one leapfrog step's acceptance crosses 0.8. */
static void init_step_size(chain_t *c) {
    int direction = 0;
    for (int tries = 0; tries < 100; tries++) {
        copy_vec(c->z.q, c->here.q, c->dim);
        copy_vec(c->z.g, c->here.g, c->dim);
        c->z.logp = c->here.logp;
        draw_momentum(c);
        double H0 = hamiltonian(c);
        leapfrog(c, c->eps);
        int up = H0 - hamiltonian(c) > log(0.8);
        if (direction == 0) direction = up ? 1 : -1;
        else if ((direction == 1) != up) break;
        c->eps = direction == 1 ? 2.0 * c->eps : 0.5 * c->eps;
        if (c->eps > 1e7 || c->eps < 1e-12) break;
    }
    if (c->eps > 1e7) c->eps = 1e7;
    if (c->eps < 1e-12) c->eps = 1e-12;
}

/* Stan's dual averaging of the log step size. */
typedef struct {
    double mu, s_bar, x_bar;
    int64_t counter;
} dual_t;

static void dual_restart(dual_t *d, double eps) {
    d->mu = log(10.0 * eps);
    d->s_bar = d->x_bar = 0.0;
    d->counter = 0;
}

static double dual_learn(dual_t *d, double accept, double target) {
    const double gamma = 0.05, kappa = 0.75, t0 = 10.0;
    d->counter++;
    if (accept > 1.0) accept = 1.0;
    double eta = 1.0 / ((double)d->counter + t0);
    d->s_bar = (1.0 - eta) * d->s_bar + eta * (target - accept);
    double x = d->mu - d->s_bar * sqrt((double)d->counter) / gamma;
    double x_eta = pow((double)d->counter, -kappa);
    d->x_bar = (1.0 - x_eta) * d->x_bar + x_eta * x;
    return exp(x);
}

/* The metric's estimates: Welford's running means and sums of squares of the draws and of
 * their gradients. */
typedef struct {
    int64_t n;
    double *mean_x, *m2_x, *mean_g, *m2_g;
} moments_t;

static void moments_reset(moments_t *m, int64_t dim) {
    m->n = 0;
    double *vectors[] = {m->mean_x, m->m2_x, m->mean_g, m->m2_g};
    for (int k = 0; k < 4; k++) memset(vectors[k], 0, (size_t)dim * sizeof(double));
}

static void moments_add(moments_t *m, const double *x, const double *g, int64_t dim) {
    m->n++;
    double n = (double)m->n;
    for (int64_t i = 0; i < dim; i++) {
        double d = x[i] - m->mean_x[i];
        m->mean_x[i] += d / n;
        m->m2_x[i] += d * (x[i] - m->mean_x[i]);
        d = g[i] - m->mean_g[i];
        m->mean_g[i] += d / n;
        m->m2_g[i] += d * (g[i] - m->mean_g[i]);
    }
}

#define MIN_VARIANCE 1e-10
#define MAX_VARIANCE 1e10

static double clamp_variance(double v) {
    return !(v >= MIN_VARIANCE) ? MIN_VARIANCE : (v > MAX_VARIANCE ? MAX_VARIANCE : v);
}

/* nutpie's estimate of each direction's posterior variance: sqrt(var(x) / var(gradient)),
 * exact for a Gaussian and usable after a few draws (Seyboldt et al., nutpie's paper). */
static void metric_from(const moments_t *m, double *minv, int64_t dim) {
    if (m->n < 3) return;
    for (int64_t i = 0; i < dim; i++) {
        double vx = m->m2_x[i], vg = m->m2_g[i]; /* the common factor 1 / (n - 1) cancels */
        if (vx > 0.0 && vg > 0.0) minv[i] = clamp_variance(sqrt(vx / vg));
    }
}

/* The tuning schedule (nutpie's defaults): the metric is estimated from the draws since the
 * switch before the last, switching every 10 draws in the first 30% of tuning, then after
 * 80 draws, and after 1.5 times as many as the last time at each later switch; the last 15%
 * (at least one draw) adapt only the step size, from a new start. */
typedef struct {
    int64_t early_end, final_start;
    int64_t last_metric; /* the iteration that sets the final metric and restarts the step size */
} schedule_t;

static schedule_t schedule(int64_t tune) {
    schedule_t s = {(int64_t)(0.3 * (double)tune), tune - (int64_t)(0.15 * (double)tune), 0};
    if (s.final_start >= tune && tune > 0) s.final_start = tune - 1;
    s.last_metric = s.final_start > 0 ? s.final_start - 1 : 0;
    return s;
}

static void set_status(const job_t *job, int64_t chain, int64_t status) { ((job_t *)job)->status[chain] = status; }

static void run_chain(const job_t *job, int64_t chain) {
    int64_t n = job->dim, width = n > 0 ? n : 1;
    chain_t c;
    memset(&c, 0, sizeof(c));
    c.job = job;
    c.dim = n;
    rng_seed(&c.rng, job->seeds[chain], (uint64_t)chain);
    /* minv; z (q, p, g); here and propose (q, g each); the ends (17); two sets of moments (8) */
    enum { N_VECTORS = 1 + 3 + 4 + 17 + 8 };
    double *block = calloc((size_t)N_VECTORS * (size_t)width, sizeof(double));
    c.level = calloc((size_t)(job->max_depth + 1) * N_LEVEL * (size_t)width, sizeof(double));
    if (!block || !c.level) {
        set_status(job, chain, 2);
        goto done;
    }
    double *next = block;
    double **vectors[] = {&c.minv, &c.z.q, &c.z.p, &c.z.g, &c.here.q, &c.here.g, &c.propose.q, &c.propose.g};
    for (size_t k = 0; k < sizeof(vectors) / sizeof(vectors[0]); k++, next += width) *vectors[k] = next;
    ends_t e;
    double **ends[] = {&e.q_fwd, &e.p_fwd, &e.g_fwd, &e.q_bck, &e.p_bck, &e.g_bck, &e.sharp_fwd_fwd,
                       &e.sharp_fwd_bck, &e.sharp_bck_fwd, &e.sharp_bck_bck, &e.p_fwd_fwd, &e.p_fwd_bck,
                       &e.p_bck_fwd, &e.p_bck_bck, &e.rho, &e.rho_fwd, &e.rho_bck};
    for (size_t k = 0; k < sizeof(ends) / sizeof(ends[0]); k++, next += width) *ends[k] = next;
    moments_t fore, back; /* the draws since the switch before the last, and since the last */
    double **moments[] = {&fore.mean_x, &fore.m2_x, &fore.mean_g, &fore.m2_g,
                          &back.mean_x, &back.m2_x, &back.mean_g, &back.m2_g};
    for (size_t k = 0; k < sizeof(moments) / sizeof(moments[0]); k++, next += width) *moments[k] = next;
    fore.n = back.n = 0;
    copy_vec(c.z.q, job->inits + (size_t)chain * (size_t)n, n);
    evaluate(&c, &c.z);
    if (c.z.logp == -INFINITY) {
        set_status(job, chain, 1);
        goto done;
    }
    copy_vec(c.here.q, c.z.q, n);
    copy_vec(c.here.g, c.z.g, n);
    c.here.logp = c.z.logp;
    /* nutpie's first metric: the variances 1 / |gradient| at the starting point */
    for (int64_t i = 0; i < n; i++) c.minv[i] = c.z.g[i] != 0.0 ? clamp_variance(1.0 / fabs(c.z.g[i])) : 1.0;
    c.eps = 1.0;
    init_step_size(&c);
    dual_t dual;
    dual_restart(&dual, c.eps);
    schedule_t plan = schedule(job->tune);
    double late_window = 80.0;
    double *out_x = job->expanded + (size_t)chain * (size_t)job->draws * (size_t)job->n_expanded;
    double *out_s = job->stats + (size_t)chain * (size_t)job->draws * N_STATS;
    for (int64_t it = 0; it < job->tune + job->draws; it++) {
        if (job->stop) {
            set_status(job, chain, 3);
            break;
        }
        double accept, energy_error;
        int64_t depth = transition(&c, &e, &accept, &energy_error);
        __atomic_store_n(&job->progress[chain], it + 1, __ATOMIC_RELAXED);
        if (it < job->tune) {
            c.eps = dual_learn(&dual, accept, job->target_accept);
            if (it < plan.final_start) {
                moments_add(&fore, c.here.q, c.here.g, n);
                moments_add(&back, c.here.q, c.here.g, n);
                int early = it < plan.early_end;
                int64_t every = early ? 10 : (int64_t)late_window;
                if (back.n >= every) { /* switch: estimate from fore, which becomes back */
                    metric_from(&fore, c.minv, n);
                    moments_t held = fore;
                    fore = back;
                    back = held;
                    moments_reset(&back, n);
                    if (!early) { /* the step size again, as Stan does after each window */
                        late_window *= 1.5;
                        init_step_size(&c);
                        dual_restart(&dual, c.eps);
                    }
                }
            }
            if (it == plan.last_metric) {
                metric_from(&fore, c.minv, n); /* the final metric: the step size from a new start */
                init_step_size(&c);
                dual_restart(&dual, c.eps);
            }
            /* the adapted step from here on (the heuristic's where nothing was learnt after it) */
            if (it == job->tune - 1 && dual.counter > 0) c.eps = exp(dual.x_bar);
            continue;
        }
        int64_t k = it - job->tune;
        double *s = out_s + (size_t)k * N_STATS;
        s[S_LOGP] = c.here.logp;
        s[S_ENERGY] = c.here.H;
        s[S_ENERGY_ERROR] = energy_error;
        s[S_ACCEPT] = accept;
        s[S_STEP] = c.eps;
        s[S_DEPTH] = (double)depth;
        s[S_STEPS] = (double)c.n_leapfrog;
        s[S_DIVERGING] = (double)c.divergent;
        double *x = out_x + (size_t)k * (size_t)job->n_expanded;
        if (job->expand((uint64_t)n, (uint64_t)job->n_expanded, c.here.q, x, job->user_data) != 0)
            for (int64_t i = 0; i < job->n_expanded; i++) x[i] = NAN;
    }
done:
    free(block);
    free(c.level);
}

/* Run chains until none is left. */
static void run_all(job_t *job) {
    for (;;) {
        pthread_mutex_lock(&job->lock);
        int64_t chain = job->next_chain++;
        pthread_mutex_unlock(&job->lock);
        if (chain >= job->chains) return;
        run_chain(job, chain);
    }
}

static void *chain_worker(void *arg) {
    job_t *job = (job_t *)arg;
    run_all(job);
    pthread_mutex_lock(&job->lock);
    job->finished++;
    pthread_cond_signal(&job->done);
    pthread_mutex_unlock(&job->lock);
    return NULL;
}

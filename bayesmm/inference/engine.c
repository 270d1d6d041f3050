/* bayesmm's engine: one compiled interpreter for the log-density, gradient and expansion of
 * every model, whose structure arrives as data (bayesmm/inference/engine.py writes the
 * program from PyMC's rewritten graph). Built into the extension module
 * bayesmm.inference._engine when bayesmm is installed (engine_module.c, setup.py).
 *
 * A program is two arrays. The integer one holds a header (engine_fields.h) and then the
 * instructions, each an opcode followed by its operands; the float one holds the constants:
 * every value of the graph that does not depend on the sampled point (the data, the priors'
 * parameters, everything computed from them alone). Values live in one address space:
 * [0, WORK) is the workspace of one evaluation (the point x first), the constants from
 * CONST_BASE on. An operand is a strided view: an address and one stride per dimension, in
 * elements. Every value is a double; integers (level codes) and booleans are exact in one.
 *
 * Both entry points have nutpie's C signatures; user_data points to eight uint64: the address
 * and length of the log-density's integer program and of its float program, then the same
 * for the expansion's. The workspace is one per
 * thread (nutpie runs chains in threads), kept between calls and freed when the thread ends.
 */

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_fields.h"

#define MAXD 8
#define LOCAL_BASE (1LL << 39)

/* The elementwise loops are compiled twice on x86-64 Linux, for the baseline instruction set
 * and for AVX2 (four doubles per instruction), and the loader picks the one the CPU runs
 * (GCC's and Clang's function multiversioning). No fused multiply-adds in either
 * (-ffp-contract=off in setup.py): both give the same bits. */
#if defined(__x86_64__) && defined(__linux__) && (defined(__clang__) || __GNUC__ >= 6)
#define WIDE __attribute__((target_clones("avx2", "default")))
#else
#define WIDE
#endif

/* -- the workspace ------------------------------------------------------------------------ */

static pthread_key_t workspace_key;
static pthread_once_t workspace_once = PTHREAD_ONCE_INIT;

typedef struct {
    double *data;
    int64_t size;
} workspace_t;

static void workspace_free(void *p) {
    workspace_t *w = (workspace_t *)p;
    if (w) {
        free(w->data);
        free(w);
    }
}

static void workspace_init(void) { pthread_key_create(&workspace_key, workspace_free); }

static double *workspace(int64_t size) {
    pthread_once(&workspace_once, workspace_init);
    workspace_t *w = (workspace_t *)pthread_getspecific(workspace_key);
    if (!w) {
        w = (workspace_t *)calloc(1, sizeof(workspace_t));
        if (!w) return NULL;
        pthread_setspecific(workspace_key, w);
    }
    if (w->size < size) {
        double *grown = (double *)realloc(w->data, (size_t)(size > 0 ? size : 1) * sizeof(double));
        if (!grown) return NULL;
        w->data = grown;
        w->size = size;
    }
    return w->data;
}

/* -- scalar functions PyTensor has and C99 lacks ---------------------------------------- */

static double digamma(double x) {
    /* Recurrence up to x >= 10, then the asymptotic series through x^-14 (the first term left
     * out is below 1e-16 there); reflection for x < 0. */
    if (isnan(x) || x == -INFINITY) return NAN;
    if (x <= 0.0 && floor(x) == x) return NAN;
    double result = 0.0;
    if (x < 0.0) {
        result -= M_PI / tan(M_PI * x);
        x = 1.0 - x;
    }
    while (x < 10.0) {
        result -= 1.0 / x;
        x += 1.0;
    }
    double f = 1.0 / (x * x);
    double t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 +
               f * (691.0 / 32760 + f * (-1.0 / 12)))))));
    return result + log(x) - 0.5 / x + t;
}

/* exp, log and log1p written without branches, so that the compiler vectorises the loops
 * that call them (libm's are calls, one element at a time; these take about half of exp's
 * time and a third of log1p's here): within 1 (exp), 2 (log) and 3 (log1p) units in the
 * last place of the exact value over the whole range, subnormals and special values
 * included (tests/test_engine.py checks them against 40-digit values), and every machine
 * computes the same bits (IEEE arithmetic only, no fused multiply-adds). */
static inline uint64_t bits_of(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline double double_of(uint64_t u) {
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline double fast_exp(double x) {
    /* x = n ln2 + r with |r| <= ln2 / 2 (Cody and Waite's two-part ln2: n ln2_hi is exact),
     * exp(r) by its Taylor series to r^13 (truncation below 1e-17 relative), times 2^n as
     * two powers of two (each a normal number, so results down to the subnormals round once). */
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    double c = x > 709.8 ? 709.8 : (x < -745.2 ? -745.2 : x);
    double t = c * 1.4426950408889634 + shifter;
    double n = t - shifter;
    double r = (c - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t k = (int64_t)(bits_of(t) - bits_of(shifter)); /* n as an integer */
    int64_t k1 = k / 2, k2 = k - k1;
    double result = p * double_of((uint64_t)(k1 + 1023) << 52) * double_of((uint64_t)(k2 + 1023) << 52);
    return x != x ? x : result;
}

static inline double fast_log(double x) {
    /* x = m 2^k with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(f), f = (m - 1) / (m + 1),
     * by its series in f^2 to f^23 (|f| < 0.1716: truncation below 1e-19). The exponent is
     * read as a double (the loop then vectorises: AVX2 converts no 64-bit integers). */
    double tiny = x < 2.2250738585072014e-308 ? 1.0 : 0.0;
    double y = tiny != 0.0 ? x * 18014398509481984.0 : x; /* subnormals times 2^54 */
    uint64_t u = bits_of(y);
    double biased = double_of(0x4330000000000000ULL | (u >> 52)) - 4503599627370496.0;
    double m = double_of((u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    double big = m > 1.4142135623730951 ? 1.0 : 0.0;
    m = big != 0.0 ? m * 0.5 : m;
    double dk = biased - 1023.0 - 54.0 * tiny + big;
    double f = (m - 1.0) / (m + 1.0), s = f * f;
    double p = 1.0 / 23;
    p = p * s + 1.0 / 21;
    p = p * s + 1.0 / 19;
    p = p * s + 1.0 / 17;
    p = p * s + 1.0 / 15;
    p = p * s + 1.0 / 13;
    p = p * s + 1.0 / 11;
    p = p * s + 1.0 / 9;
    p = p * s + 1.0 / 7;
    p = p * s + 1.0 / 5;
    p = p * s + 1.0 / 3;
    double result = dk * 6.93147180369123816490e-01 + (2.0 * f + 2.0 * f * s * p + dk * 1.90821492927058770002e-10);
    result = x == 0.0 ? -INFINITY : result;
    result = x == INFINITY ? INFINITY : result;
    return (x < 0.0 || x != x) ? NAN : result;
}

static inline double fast_log1p(double x) {
    /* Goldberg's correction: log(u) x / (u - 1) for u = 1 + x rounded (exact where u = 1). */
    double u = 1.0 + x;
    double d = u - 1.0;
    double result = d == 0.0 ? x : fast_log(u) * (x / d);
    result = x == INFINITY ? INFINITY : result;
    return x != x ? x : result;
}

static inline double sigmoid(double x) {
    double e = fast_exp(-fabs(x)), s = 1.0 / (1.0 + e);
    return x >= 0 ? s : e * s;
}

static inline double softplus(double x) { return (x > 0.0 ? x : 0.0) + fast_log1p(fast_exp(-fabs(x))); }

static double log1mexp(double x) { return x < -M_LN2 ? log1p(-exp(x)) : log(-expm1(x)); }

static double nan_max(double a, double b) { return (isnan(a) || a > b) ? a : b; }
static double nan_min(double a, double b) { return (isnan(a) || a < b) ? a : b; }
static double sign(double a) { return isnan(a) ? a : (double)((a > 0) - (a < 0)); }

static inline double log_gamma(double a) {
    int sign_of_gamma; /* lgamma_r: lgamma's sign goes to a global, which threads would share */
    return lgamma_r(a, &sign_of_gamma);
}

static double erfcx(double x) {
    /* exp(x^2) erfc(x), the scaled complementary error function of the normal's log-CDF:
     * directly up to x = 25 (erfc is relatively accurate far into its tail, and exp(x^2) loses
     * about x^2 * 1e-16 of its digits), its asymptotic series beyond (six terms: relative error
     * below 1e-15 there), and by reflection for negative x. */
    if (isnan(x)) return x;
    if (x < 0.0) return x < -26.7 ? INFINITY : 2.0 * exp(x * x) - erfcx(-x);
    if (x < 25.0) return exp(x * x) * erfc(x);
    double t = 1.0 / (2.0 * x * x);
    double series = 1.0 - t * (1.0 - 3.0 * t * (1.0 - 5.0 * t * (1.0 - 7.0 * t * (1.0 - 9.0 * t))));
    return series / (x * 1.7724538509055160273);
}

/* The regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 - P(a, x) (Poisson's
 * CDF is Q(k + 1, mu)): P by its series where x < a + 1, Q by its continued fraction (the
 * modified Lentz method) elsewhere, each relatively accurate where it is used; the other
 * one is 1 less it. */
static double gamma_log_prefix(double a, double x) { return a * log(x) - x - log_gamma(a); }

static double gamma_prefix(double a, double x) { return exp(gamma_log_prefix(a, x)); }

/* P's series without its prefix: P = sum * x^a e^-x / Gamma(a). */
static double gamma_p_sum(double a, double x) {
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 10000; n++) {
        term *= x / (a + n);
        sum += term;
        if (fabs(term) < fabs(sum) * 1e-17) break;
    }
    return sum;
}

static double gamma_p_series(double a, double x) { return gamma_p_sum(a, x) * gamma_prefix(a, x); }

/* One step of Lentz's method for the continued fraction b0 + a1 / (b1 + a2 / (b2 + ...)):
 * with the next term's a and b, updates c and d and returns the factor the value takes. */
static inline double lentz_step(double a, double b, double *c, double *d) {
    const double tiny = 1e-300;
    *d = a * *d + b;
    if (fabs(*d) < tiny) *d = tiny;
    *c = b + a / *c;
    if (fabs(*c) < tiny) *c = tiny;
    *d = 1.0 / *d;
    return *d * *c;
}

/* Q's continued fraction without its prefix: Q = fraction * x^a e^-x / Gamma(a). */
static double gamma_q_continued(double a, double x) {
    const double tiny = 1e-300;
    double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
    for (int i = 1; i < 10000; i++) {
        b += 2.0;
        double delta = lentz_step(-i * (i - a), b, &c, &d);
        h *= delta;
        if (fabs(delta - 1.0) < 1e-17) break;
    }
    return h;
}

static double gamma_q_fraction(double a, double x) { return gamma_prefix(a, x) * gamma_q_continued(a, x); }

static double gamma_p(double a, double x) {
    if (isnan(a) || isnan(x) || a <= 0.0 || x < 0.0) return NAN;
    if (x == 0.0) return 0.0;
    if (isinf(x)) return 1.0;
    return x < a + 1.0 ? gamma_p_series(a, x) : 1.0 - gamma_q_fraction(a, x);
}

static double gamma_q(double a, double x) {
    if (isnan(a) || isnan(x) || a <= 0.0 || x < 0.0) return NAN;
    if (x == 0.0) return 1.0;
    if (isinf(x)) return 0.0;
    return x < a + 1.0 ? 1.0 - gamma_p_series(a, x) : gamma_q_fraction(a, x);
}

/* log P(a, x) (``upper`` 0) or log Q(a, x) (1), the logs of a censored count's or gamma's
 * tails: the side that is small where x lies (P below a + 1, Q above) from its series or
 * fraction with its prefix added as a log (the prefix underflows long before the log of P or
 * Q does), the other as log1p of minus it, so that log F keeps the digits of 1 - F near 0
 * (an interval's log(F(y2) - F(y)) in the upper tail is a difference of two of them). */
static double gamma_log_tail(double a, double x, int upper) {
    if (isnan(a) || isnan(x) || a <= 0.0 || x < 0.0) return NAN;
    if (x == 0.0) return upper ? 0.0 : -INFINITY;
    if (isinf(x)) return upper ? -INFINITY : 0.0;
    double log_prefix = gamma_log_prefix(a, x);
    if (x < a + 1.0) {
        double log_p = log(gamma_p_sum(a, x)) + log_prefix;
        return upper ? log1p(-exp(log_p)) : log_p;
    }
    double log_q = log(gamma_q_continued(a, x)) + log_prefix;
    return upper ? log_q : log1p(-exp(log_q));
}

/* dP(a, x)/da, P's derivative in its shape (Q's is minus it; a censored gamma model samples
 * the shape). Where x <= max(a, 1): P = x^a e^-x / Gamma(a + 1) sum_n t_n, t_0 = 1,
 * t_n = t_{n-1} x / (a + n) (DLMF 8.7.1), differentiated term by term (dt_n/da carried along
 * the recurrence). Elsewhere: Q = x^a e^-x / Gamma(a) lim p_n / q_n, the convergents of
 * Q's continued fraction (DLMF 8.9.2, Cephes's igamc), differentiated through their
 * three-term recurrence, rescaled together before they overflow. Each side converges fast
 * where it is used, as for P and Q themselves (PyTensor's gammainc_grad makes the same split). */
static double gamma_p_da_series(double a, double x) {
    double s = 1.0, ds = 0.0, t = 1.0, dt = 0.0, k = a;
    for (int n = 1; n < 100000; n++) {
        k += 1.0;
        double r = x / k;
        dt = r * (dt - t / k);  /* d(x / (a + n))/da = -r / (a + n) */
        t *= r;
        s += t;
        ds += dt;
        if (t <= DBL_EPSILON * s && fabs(dt) <= DBL_EPSILON * fabs(ds)) break;
    }
    double log_x = log(x);
    return exp(a * log_x - x - log_gamma(a + 1.0)) * (s * (log_x - digamma(a + 1.0)) + ds);
}

static double gamma_q_da_fraction(double a, double x) {
    double log_x = log(x), log_front = gamma_log_prefix(a, x);
    if (log_front < log(DBL_MIN)) return 0.0;  /* Q underflows */
    double p2 = 1.0, p1 = x + 1.0, q2 = x, q1 = (x + 2.0 - a) * x;
    double dp2 = 0.0, dp1 = 0.0, dq2 = 0.0, dq1 = -x;
    double f = p1 / q1, df = f * x / q1;
    for (int n = 1; n < 100000; n++) {
        double z = x + 2.0 * n + 2.0 - a, y = (n + 1.0 - a) * n;  /* dz/da = -1, dy/da = -n */
        double p = p1 * z - p2 * y, q = q1 * z - q2 * y;
        double dp = dp1 * z - p1 - dp2 * y + p2 * n, dq = dq1 * z - q1 - dq2 * y + q2 * n;
        int converged = 0;
        if (q != 0.0) {
            double f_next = p / q, df_next = (dp - f_next * dq) / q;
            converged = fabs(f_next - f) <= DBL_EPSILON * fabs(f_next) &&
                        fabs(df_next - df) <= DBL_EPSILON * fabs(df_next);
            f = f_next;
            df = df_next;
        }
        double scale = fabs(p) > 1.0 / DBL_EPSILON ? DBL_EPSILON : 1.0;
        p2 = p1 * scale, p1 = p * scale, q2 = q1 * scale, q1 = q * scale;
        dp2 = dp1 * scale, dp1 = dp * scale, dq2 = dq1 * scale, dq1 = dq * scale;
        if (converged) break;
    }
    return exp(log_front) * (f * (log_x - digamma(a)) + df);
}

static double gamma_p_da(double a, double x) {
    if (isnan(a) || isnan(x) || a <= 0.0 || x < 0.0) return NAN;
    if (x == 0.0 || isinf(x)) return 0.0;
    return (x <= 1.0 || x <= a) ? gamma_p_da_series(a, x) : -gamma_q_da_fraction(a, x);
}

/* I_x(a, b), the regularized incomplete beta function (scipy's betainc, PyTensor's BetaInc):
 * the continued fraction of Numerical Recipes (6.4) by Lentz's method, on the side of
 * x = (a + 1) / (a + b + 2) where it converges fast, the other side by I_x(a, b) =
 * 1 - I_{1-x}(b, a). */
static double beta_fraction(double a, double b, double x) {
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m < 10000; m++) {
        double m2 = 2.0 * m;
        h *= lentz_step(m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)), 1.0, &c, &d);
        double delta = lentz_step(-(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)), 1.0, &c, &d);
        h *= delta;
        if (fabs(delta - 1.0) < 1e-16) break;
    }
    return h;
}

/* log(x^a (1 - x)^b / B(a, b)), the prefix of I_x(a, b)'s continued fraction. */
static double beta_log_front(double a, double b, double x) {
    return a * log(x) + b * log1p(-x) - (log_gamma(a) + log_gamma(b) - log_gamma(a + b));
}

static double beta_inc(double a, double b, double x) {
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0.0 || b <= 0.0 || x < 0.0 || x > 1.0) return NAN;
    if (x == 0.0) return 0.0;
    if (x == 1.0) return 1.0;
    double log_front = beta_log_front(a, b, x);
    if (x < (a + 1.0) / (a + b + 2.0)) return exp(log_front) * beta_fraction(a, b, x) / a;
    return 1.0 - exp(log_front) * beta_fraction(b, a, 1.0 - x) / b;
}

/* dI_x(p, q)/dp and dI_x(p, q)/dq (a censored negative binomial's, Student-t's or beta's
 * sampled shapes): Boik and Robison-Cox (1998, J. Stat. Software 3(1)). Where
 * x <= p / (p + q), I = K A_n / B_n, K = x^p (1 - x)^(q - 1) / (p B(p, q)), the convergents
 * A_n / B_n of a continued fraction in f = q x / (p (1 - x)) whose numerators a_n and
 * offsets b_n are differentiated in p and q and carried through the three-term recurrence
 * beside A_n and B_n (rescaled together, which leaves A / B and its derivatives alone); the
 * other side through I_x(p, q) = 1 - I_{1-x}(q, p). */
static void beta_inc_fraction_dpq(double p, double q, double x, double *dp, double *dq) {
    double f = q * x / (p * (1.0 - x)), pp = p * p;
    double log_beta = log_gamma(p) + log_gamma(q) - log_gamma(p + q);
    double k = exp(p * log(x) + (q - 1.0) * log1p(-x) - log(p) - log_beta);
    double dk_p = log(x) - 1.0 / p + digamma(p + q) - digamma(p);
    double dk_q = log1p(-x) + digamma(p + q) - digamma(q);
    double a2 = 1.0, a1 = 1.0, b2 = 0.0, b1 = 1.0;
    double a2p = 0.0, a1p = 0.0, b2p = 0.0, b1p = 0.0, a2q = 0.0, a1q = 0.0, b2q = 0.0, b1q = 0.0;
    double out_p = 0.0, out_q = 0.0;
    for (int n = 1; n <= 2000; n++) {
        double m = n, p2n = p + 2.0 * m, an, an_p, an_q;
        if (n == 1) {
            an = p * f * (q - 1.0) / (q * (p + 1.0));
            an_p = -p * f * (q - 1.0) / (q * (p + 1.0) * (p + 1.0));
            an_q = p * f / (q * (p + 1.0));
        } else {
            double front = pp * f * f * (m - 1.0) / (q * q);
            double d3 = p2n - 3.0, d2 = p2n - 2.0, d1 = p2n - 1.0;
            an = front * (p + q + m - 2.0) * (p + m - 1.0) * (q - m) / (d3 * d2 * d2 * d1);
            double poly = (-8.0 + 8.0 * p + 8.0 * q) * m * m * m +
                          (16.0 * pp + (-44.0 + 20.0 * q) * p + 26.0 - 24.0 * q) * m * m +
                          (10.0 * pp * p + (14.0 * q - 46.0) * pp + (-40.0 * q + 66.0) * p - 28.0 + 24.0 * q) * m +
                          2.0 * pp * pp + (-13.0 + 3.0 * q) * pp * p + (-14.0 * q + 30.0) * pp +
                          (-29.0 + 19.0 * q) * p + 10.0 - 8.0 * q;
            an_p = (-(m - 1.0) * f * f * pp * (q - m) / (q * q * d3 * d3)) * poly / (d2 * d2 * d2 * d1 * d1);
            an_q = front * (p + m - 1.0) * (2.0 * q + p - 2.0) / (d3 * d2 * d2 * d1);
        }
        double bn = (2.0 * (p * f + 2.0 * q) * m * (m + p - 1.0) + p * q * (p - 2.0 - p * f)) /
                    (q * (p2n - 2.0) * p2n);
        double bn_p = (p * f / q) *
                      ((-4.0 * p - 4.0 * q + 4.0) * m * m + (4.0 * p - 4.0 + 4.0 * q - 2.0 * pp) * m + pp * q) /
                      ((p2n - 2.0) * (p2n - 2.0) * p2n * p2n);
        double bn_q = -(pp * f) / (q * (p2n - 2.0) * p2n);
        double a = an * a2 + bn * a1, b = an * b2 + bn * b1;
        double ap = an_p * a2 + an * a2p + bn_p * a1 + bn * a1p, bp = an_p * b2 + an * b2p + bn_p * b1 + bn * b1p;
        double aq = an_q * a2 + an * a2q + bn_q * a1 + bn * a1q, bq = an_q * b2 + an * b2q + bn_q * b1 + bn * b1q;
        a2 = a1, a1 = a, b2 = b1, b1 = b;
        a2p = a1p, a1p = ap, b2p = b1p, b1p = bp, a2q = a1q, a1q = aq, b2q = b1q, b1q = bq;
        if (fabs(b1) > 1e100) { /* the convergents grow: scale them all down together */
            double s = 1e-100;
            a2 *= s, a1 *= s, b2 *= s, b1 *= s, a2p *= s, a1p *= s, b2p *= s, b1p *= s;
            a2q *= s, a1q *= s, b2q *= s, b1q *= s;
        }
        double ratio = a1 / b1;
        double next_p = k * (ratio * dk_p + (a1p - ratio * b1p) / b1);
        double next_q = k * (ratio * dk_q + (a1q - ratio * b1q) / b1);
        int settled = n >= 3 && fabs(next_p - out_p) <= 1e-15 * fabs(next_p) &&
                      fabs(next_q - out_q) <= 1e-15 * fabs(next_q);
        out_p = next_p, out_q = next_q;
        if (settled) break;
    }
    *dp = out_p, *dq = out_q;
}

/* dI_x(a, b)/da (``wrt`` 0) or /db (1). */
static double beta_inc_d(double a, double b, double x, int wrt) {
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0.0 || b <= 0.0 || x < 0.0 || x > 1.0) return NAN;
    if (x == 0.0 || x == 1.0) return 0.0;
    double da, db;
    if (x <= a / (a + b)) {
        beta_inc_fraction_dpq(a, b, x, &da, &db);
        return wrt ? db : da;
    }
    beta_inc_fraction_dpq(b, a, 1.0 - x, &db, &da); /* I_x(a, b) = 1 - I_{1-x}(b, a) */
    return wrt ? -db : -da;
}

/* log I_x(a, b) (``upper`` 0) or log(1 - I_x(a, b)) (1), each from the side whose fraction
 * converges there (beta_inc's split) with its prefix as a log, the other as log1p of minus it:
 * a censored count's or proportion's log F keeps the digits of 1 - F. */
static double beta_log_tail(double a, double b, double x, int upper) {
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0.0 || b <= 0.0 || x < 0.0 || x > 1.0) return NAN;
    if (x == 0.0) return upper ? 0.0 : -INFINITY;
    if (x == 1.0) return upper ? -INFINITY : 0.0;
    double log_front = beta_log_front(a, b, x);
    int direct = x < (a + 1.0) / (a + b + 2.0);
    double log_small = direct ? log_front + log(beta_fraction(a, b, x) / a)
                              : log_front + log(beta_fraction(b, a, 1.0 - x) / b);
    /* direct: log_small is log I; else it is log(1 - I) */
    if (direct == !upper) return log_small;
    return log1p(-exp(log_small));
}

/* -- elementwise: one loop per scalar operation over the last dimension ------------------ */

/* A reduction into po[0] of the values V(i), i < n, by expr (a the running value, b the next
 * value). Over unit strides (UNIT) and 32 values or more: sixteen running values, four
 * vectors; else four running values in registers. Either way combined at the end, so that
 * the operations do not wait on each other (those reduced by are associative up to
 * rounding). V16 reads the values where UNIT holds (no stride, so the loop vectorises), V4
 * otherwise. sum_of_products runs the same reduction on products, so the same bits. */
#define REDUCE(V16, V4, UNIT, expr)                                                  \
    if ((UNIT) && n >= 32) {                                                         \
        double r[16];                                                                \
        for (int j = 0; j < 16; j++) r[j] = V16(j);                                  \
        int64_t i = 16;                                                              \
        for (; i + 16 <= n; i += 16)                                                 \
            for (int j = 0; j < 16; j++) {                                           \
                double a = r[j], b = V16(i + j);                                     \
                r[j] = (expr);                                                       \
            }                                                                        \
        double total = po[0];                                                        \
        for (int j = 0; j < 16; j++) {                                               \
            double a = total, b = r[j];                                              \
            total = (expr);                                                          \
        }                                                                            \
        for (; i < n; i++) {                                                         \
            double a = total, b = V16(i);                                            \
            total = (expr);                                                          \
        }                                                                            \
        po[0] = total;                                                               \
    } else {                                                                         \
        double r0 = po[0], r1 = 0.0, r2 = 0.0, r3 = 0.0;                             \
        int64_t i = 0;                                                               \
        if (n >= 8) {                                                                \
            r1 = V4(0), r2 = V4(1), r3 = V4(2);                                      \
            for (i = 3; i + 4 <= n; i += 4) {                                        \
                { double a = r0, b = V4(i); r0 = (expr); }                           \
                { double a = r1, b = V4(i + 1); r1 = (expr); }                       \
                { double a = r2, b = V4(i + 2); r2 = (expr); }                       \
                { double a = r3, b = V4(i + 3); r3 = (expr); }                       \
            }                                                                        \
        }                                                                            \
        for (; i < n; i++) {                                                         \
            double a = r0, b = V4(i);                                                \
            r0 = (expr);                                                             \
        }                                                                            \
        if (n >= 8) {                                                                \
            { double a = r0, b = r1; r0 = (expr); }                                  \
            { double a = r0, b = r2; r0 = (expr); }                                  \
            { double a = r0, b = r3; r0 = (expr); }                                  \
        }                                                                            \
        po[0] = r0;                                                                  \
    }
/* The values of LOOP2's reduction: its second operand. */
#define B_UNIT(i) pb[i]
#define B_STRIDED(i) pb[(i) * sb]

/* The loops over unit strides (the common case) are written apart so that the compiler can
 * vectorise them; broadcast scalars have stride 0. */
#define LOOP1(expr)                                                                  \
    if (so == 1 && sa == 1) {                                                        \
        for (int64_t i = 0; i < n; i++) {                                            \
            double a = pa[i];                                                        \
            po[i] = (expr);                                                          \
        }                                                                            \
    } else {                                                                         \
        for (int64_t i = 0; i < n; i++) {                                            \
            double a = pa[i * sa];                                                   \
            po[i * so] = (expr);                                                     \
        }                                                                            \
    }                                                                                \
    break;
#define LOOP2(expr)                                                                  \
    if (so == 1 && sa == 1 && sb == 1) {                                             \
        for (int64_t i = 0; i < n; i++) {                                            \
            double a = pa[i], b = pb[i];                                             \
            po[i] = (expr);                                                          \
        }                                                                            \
    } else if (so == 1 && sa == 1 && sb == 0) {                                      \
        const double b = pb[0];                                                      \
        for (int64_t i = 0; i < n; i++) {                                            \
            double a = pa[i];                                                        \
            po[i] = (expr);                                                          \
        }                                                                            \
    } else if (so == 1 && sa == 0 && sb == 1) {                                      \
        const double a = pa[0];                                                      \
        for (int64_t i = 0; i < n; i++) {                                            \
            double b = pb[i];                                                        \
            po[i] = (expr);                                                          \
        }                                                                            \
    } else if (so == 0 && sa == 0 && pa == po) { /* a reduction into one element */  \
        REDUCE(B_UNIT, B_STRIDED, sb == 1, expr)                                   \
    } else {                                                                         \
        for (int64_t i = 0; i < n; i++) {                                            \
            double a = pa[i * sa], b = pb[i * sb];                                   \
            po[i * so] = (expr);                                                     \
        }                                                                            \
    }                                                                                \
    break;
#define LOOP3(expr)                                                                  \
    if (so == 1 && (sa | sb | sc) >= 0 && sa <= 1 && sb <= 1 && sc <= 1) {          \
        /* unit strides or broadcasts (0, 1 as multipliers keep the loop vectorisable) */\
        for (int64_t i = 0; i < n; i++) {                                            \
            double a = pa[i * sa], b = pb[i * sb], c = pc[i * sc];                   \
            po[i] = (expr);                                                          \
        }                                                                            \
    } else {                                                                         \
        for (int64_t i = 0; i < n; i++) {                                            \
            double a = pa[i * sa], b = pb[i * sb], c = pc[i * sc];                   \
            po[i * so] = (expr);                                                     \
        }                                                                            \
    }                                                                                \
    break;
/* Every scalar operation, with the loops L1, L2, L3 of one, two and three operands. */
#define SCALAR_CASES(L1, L2, L3)                                                     \
    case EW_IDENTITY: L1(a)                                                          \
    case EW_NEG: L1(-a)                                                              \
    case EW_EXP: L1(fast_exp(a))                                                     \
    case EW_LOG: L1(fast_log(a))                                                     \
    case EW_LOG1P: L1(fast_log1p(a))                                                 \
    case EW_EXPM1: L1(expm1(a))                                                      \
    case EW_SQR: L1(a * a)                                                           \
    case EW_SQRT: L1(sqrt(a))                                                        \
    case EW_SIGMOID: L1(sigmoid(a))                                                  \
    case EW_SOFTPLUS: L1(softplus(a))                                                \
    case EW_LOG1MEXP: L1(log1mexp(a))                                                \
    case EW_RECIPROCAL: L1(1.0 / a)                                                  \
    case EW_SIGN: L1(sign(a))                                                        \
    case EW_ABS: L1(fabs(a))                                                         \
    case EW_GAMMALN: L1(log_gamma(a))                                                \
    case EW_DIGAMMA: L1(digamma(a))                                                  \
    case EW_ERF: L1(erf(a))                                                          \
    case EW_ERFC: L1(erfc(a))                                                        \
    case EW_ERFCX: L1(erfcx(a))                                                      \
    case EW_TANH: L1(tanh(a))                                                        \
    case EW_ISNAN: L1(isnan(a) ? 1.0 : 0.0)                                          \
    case EW_ISINF: L1(isinf(a) ? 1.0 : 0.0)                                          \
    case EW_NOT: L1(a == 0.0 ? 1.0 : 0.0)                                            \
    case EW_TRUNC: L1(trunc(a))                                                      \
    case EW_BOOL: L1(a != 0.0 ? 1.0 : 0.0)                                           \
    case EW_FLOOR: L1(floor(a))                                                      \
    case EW_CEIL: L1(ceil(a))                                                        \
    case EW_LOG2: L1(log2(a))                                                        \
    case EW_LOG10: L1(log10(a))                                                      \
    case EW_F32: L1((double)(float)a)                                                \
    case EW_ADD: L2(a + b)                                                           \
    case EW_SUB: L2(a - b)                                                           \
    case EW_MUL: L2(a * b)                                                           \
    case EW_DIV: L2(a / b)                                                           \
    case EW_POW: L2(pow(a, b))                                                       \
    case EW_MAX: L2(nan_max(a, b))                                                   \
    case EW_MIN: L2(nan_min(a, b))                                                   \
    case EW_GT: L2(a > b ? 1.0 : 0.0)                                                \
    case EW_GE: L2(a >= b ? 1.0 : 0.0)                                               \
    case EW_LT: L2(a < b ? 1.0 : 0.0)                                                \
    case EW_LE: L2(a <= b ? 1.0 : 0.0)                                               \
    case EW_EQ: L2(a == b ? 1.0 : 0.0)                                               \
    case EW_NEQ: L2(a != b ? 1.0 : 0.0)                                              \
    case EW_AND: L2((a != 0.0 && b != 0.0) ? 1.0 : 0.0)                              \
    case EW_OR: L2((a != 0.0 || b != 0.0) ? 1.0 : 0.0)                               \
    case EW_SECOND: L2(b)                                                            \
    case EW_INTDIV: L2(floor(a / b))                                                 \
    case EW_MOD: L2(a - b * floor(a / b))                                            \
    case EW_XLOGY0: L2(a == 0.0 ? 0.0 : a * log(b))                                  \
    case EW_GAMMAINC: L2(gamma_p(a, b))                                              \
    case EW_GAMMAINCC: L2(gamma_q(a, b))                                             \
    case EW_GAMMAINC_DA: L2(gamma_p_da(a, b))                                        \
    case EW_LOG_GAMMAINC: L2(gamma_log_tail(a, b, 0))                                \
    case EW_LOG_GAMMAINCC: L2(gamma_log_tail(a, b, 1))                               \
    case EW_BETAINC_DA: L3(beta_inc_d(a, b, c, 0))                                  \
    case EW_BETAINC_DB: L3(beta_inc_d(a, b, c, 1))                                  \
    case EW_LOG_BETAINC: L3(beta_log_tail(a, b, c, 0))                              \
    case EW_LOG_BETAINCC: L3(beta_log_tail(a, b, c, 1))                             \
    case EW_SWITCH: L3(a != 0.0 ? b : c)                                             \
    case EW_BETAINC: L3(beta_inc(a, b, c))                                           \
    case EW_CLIP: L3(a < b ? b : (a > c ? c : a))                                    \
    case EW_ADDMUL: L3(a + b * c)

/* out[0] += sum of b[i] c[i] (a product that only a reduction reads, fused with it by
 * blocks.py): LOOP2's reduction of the stored products (unit stride), the products made as
 * they are read, so the same bits. */
#define UNIT(i) (pb[i] * pc[i])
#define SCALED(i) (pb[i] * pc[0])
#define STRIDED(i) (pb[(i) * sb] * pc[(i) * sc])
WIDE static int sum_of_products(int64_t n, double *po, const double *pb, int64_t sb, const double *pc,
                                int64_t sc) {
    if (sb == 1 && sc == 1) {
        REDUCE(UNIT, UNIT, 1, a + b)
    } else if (sb == 1 && sc == 0) {
        REDUCE(SCALED, SCALED, 1, a + b)
    } else {
        REDUCE(STRIDED, STRIDED, 1, a + b)
    }
    return 0;
}
#undef UNIT
#undef SCALED
#undef STRIDED

/* Returns 0, or 1 for an unknown code. */
WIDE static int elementwise_row(int64_t code, int64_t n, double *po, int64_t so, const double *pa, int64_t sa,
                           const double *pb, int64_t sb, const double *pc, int64_t sc) {
    if (code == EW_DIV && so == 1 && sa == 1 && sb == 0 && n >= 64 && isnormal(pb[0])) {
        /* by one number (a scale) over many rows: times its reciprocal, one division in all
         * (within an ulp of each quotient; a subnormal divisor, whose reciprocal overflows,
         * divides) */
        const double r = 1.0 / pb[0];
        for (int64_t i = 0; i < n; i++) po[i] = pa[i] * r;
        return 0;
    }
    if (code == EW_SWITCH && sa == 0) {
        /* one condition for every row (a parameter's check, broadcast): a copy of the
         * operand it picks */
        const double *pick = pa[0] != 0.0 ? pb : pc;
        int64_t sp = pa[0] != 0.0 ? sb : sc;
        return elementwise_row(EW_IDENTITY, n, po, so, pick, sp, pick, sp, pick, sp);
    }
    if (code == EW_ADDMUL && so == 0 && sa == 0 && pa == po) return sum_of_products(n, po, pb, sb, pc, sc);
    if (code == EW_ADDMUL && so == 1) {
        /* a + b c over rows, each operand a row or one number: the strides as constants,
         * so that each loop vectorises (other strides: the general loop below) */
#define ADDMUL(SA, SB, SC)                                                           \
    if (sa == SA && sb == SB && sc == SC) {                                          \
        for (int64_t i = 0; i < n; i++) po[i] = pa[i * SA] + pb[i * SB] * pc[i * SC]; \
        return 0;                                                                    \
    }
        ADDMUL(1, 1, 1) ADDMUL(1, 1, 0) ADDMUL(1, 0, 1) ADDMUL(0, 1, 1)
        ADDMUL(0, 1, 0) ADDMUL(0, 0, 1) ADDMUL(1, 0, 0) ADDMUL(0, 0, 0)
#undef ADDMUL
    }
    switch (code) {
        SCALAR_CASES(LOOP1, LOOP2, LOOP3)
        default: return 1;
    }
    return 0;
}

/* The operand's pointer for an address in the joint address space: the workspace below
 * LOCAL_BASE, the constants from CONST_BASE, and in between a block's chunk-local values
 * (bayesmm/inference/blocks.py): the workspace address (address - LOCAL_BASE) holds the rows
 * [lo, lo + chunk) of the chunk being run, so the pointer returned is indexed by row. */
static inline double *at(double *work, const double *consts, int64_t lo, int64_t address) {
    if (address >= CONST_BASE) return (double *)consts + (address - CONST_BASE);
    if (address >= LOCAL_BASE) return work + (address - LOCAL_BASE) - lo;
    return work + address;
}

/* [PICK, code, nin, n, pick, out, out_stride, (in, in_stride) x nin]: a one-dimensional
 * elementwise operation at the positions ``pick`` only. */
static int elementwise_pick(const int64_t *op, double *work, const double *consts, int64_t nw) {
    /* A chunk of the positions at a time: their operands copied side by side, the row loop
     * (vectorised) run on the copies, the results copied back to their positions. A
     * broadcast operand (stride 0) is read in place. */
    enum { PICK_CHUNK = 256 };
    double in[3][PICK_CHUNK], out[PICK_CHUNK];
    int64_t code = op[1], nin = op[2], n = op[3];
    const double *pick = at(work, consts, 0, op[4]);
    double *po = at(work, consts, 0, op[5]);
    int64_t so = op[6];
    const double *p[3] = {po, po, po};
    int64_t s[3] = {0, 0, 0};
    for (int64_t k = 0; k < nin && k < 3; k++) p[k] = at(work, consts, 0, op[7 + 2 * k]), s[k] = op[8 + 2 * k];
    (void)nw;
    for (int64_t lo = 0; lo < n; lo += PICK_CHUNK) {
        int64_t m = n - lo < PICK_CHUNK ? n - lo : PICK_CHUNK;
        const double *operand[3] = {in[0], in[1], in[2]};
        int64_t stride[3] = {1, 1, 1};
        for (int64_t k = 0; k < 3; k++) {
            if (k >= nin || s[k] == 0) {
                operand[k] = p[k], stride[k] = 0;
                continue;
            }
            for (int64_t j = 0; j < m; j++) in[k][j] = p[k][(int64_t)pick[lo + j] * s[k]];
        }
        if (elementwise_row(code, m, out, 1, operand[0], stride[0], operand[1], stride[1], operand[2], stride[2]))
            return 1;
        for (int64_t j = 0; j < m; j++) po[(int64_t)pick[lo + j] * so] = out[j];
    }
    return 0;
}

/* [EW, code, nin, ndim, shape.., out, out strides.., (in, in strides..) x nin] */
static int elementwise(const int64_t *op, double *work, const double *consts, int64_t n_work) {
    int64_t code = op[1], nin = op[2], nd = op[3];
    const int64_t *shape = op + 4;
    const int64_t *out = op + 4 + nd;
    const int64_t *in[3] = {NULL, NULL, NULL};
    for (int64_t k = 0; k < nin && k < 3; k++) in[k] = out + (k + 1) * (nd + 1);
    double *po = at(work, consts, 0, out[0]);
    const double *pi[3] = {po, po, po};
    for (int64_t k = 0; k < nin && k < 3; k++) pi[k] = at(work, consts, 0, in[k][0]);
    if (nd == 0) {
        return elementwise_row(code, 1, po, 0, pi[0], 0, pi[1], 0, pi[2], 0);
    }
    int64_t last = nd - 1, n = shape[last];
    int64_t so = out[1 + last], s[3] = {0, 0, 0};
    for (int64_t k = 0; k < nin && k < 3; k++) s[k] = in[k][1 + last];
    int64_t index[MAXD] = {0};
    int64_t rows = 1;
    for (int64_t d = 0; d < last; d++) rows *= shape[d];
    for (int64_t r = 0; r < rows; r++) {
        int64_t oo = 0, oi[3] = {0, 0, 0};
        for (int64_t d = 0; d < last; d++) {
            oo += index[d] * out[1 + d];
            for (int64_t k = 0; k < nin && k < 3; k++) oi[k] += index[d] * in[k][1 + d];
        }
        if (elementwise_row(code, n, po + oo, so, pi[0] + oi[0], s[0], pi[1] + oi[1], s[1], pi[2] + oi[2], s[2]))
            return 1;
        for (int64_t d = last - 1; d >= 0; d--) {
            if (++index[d] < shape[d]) break;
            index[d] = 0;
        }
    }
    return 0;
}

/* -- ScalarLoop: a scalar graph run per element until its condition or n_steps ---------------- */

enum { LOOP_CHUNK = 256 }; /* LOOP_REGS and LOOP_IO: engine_fields.h */

static int64_t loop_offset(int64_t flat, const int64_t *shape, const int64_t *strides, int64_t nd) {
    int64_t offset = 0;
    for (int64_t d = nd - 1; d >= 0; d--) {
        offset += (flat % shape[d]) * strides[d];
        flat /= shape[d];
    }
    return offset;
}

/* [LOOP, nin, nout, is_while, nd, shape.., (out, strides..) x nout, (in, strides..) x nin,
 * n_regs, n_consts, const_regs.., const_values, n_ops, (code, dst, a, b, c) x n_ops,
 * update_regs.. (nout - is_while), until_reg (is_while)]: PyTensor's ScalarLoop. Registers:
 * the carried values, the constant inputs, then the inner graph's constants and its nodes'
 * values (engine.py's _scalar_loop); input 0 is n_steps. Up to LOOP_CHUNK elements run in
 * lockstep, each register a column of them, so that each inner operation is one vectorised
 * elementwise loop over the elements still running; an element leaves when its condition
 * holds or its n_steps are done, with the values PyTensor's loop would give it. */
static int scalar_loop(const int64_t *op, double *work, const double *consts) {
    int64_t nin = op[1], nout = op[2], is_while = op[3], nd = op[4];
    const int64_t *shape = op + 5, *p = op + 5 + nd;
    if (nin > LOOP_IO || nout > LOOP_IO || nd > MAXD) return 7;
    double *po[LOOP_IO];
    const double *pi[LOOP_IO];
    const int64_t *so[LOOP_IO], *si[LOOP_IO];
    for (int64_t k = 0; k < nout; k++, p += 1 + nd) po[k] = at(work, consts, 0, p[0]), so[k] = p + 1;
    for (int64_t k = 0; k < nin; k++, p += 1 + nd) pi[k] = at(work, consts, 0, p[0]), si[k] = p + 1;
    int64_t n_regs = p[0], n_consts = p[1];
    const int64_t *const_regs = p + 2;
    const double *const_values = at(work, consts, 0, p[2 + n_consts]);
    int64_t n_ops = p[3 + n_consts];
    const int64_t *ops = p + 4 + n_consts, *results = ops + 5 * n_ops;
    int64_t n_update = nout - is_while, total = 1;
    if (n_regs > LOOP_REGS) return 7;
    for (int64_t d = 0; d < nd; d++) total *= shape[d];
    enum { C = LOOP_CHUNK };
    double *R = malloc((size_t)(n_regs + n_update + 1) * C * sizeof(double));
    if (!R) return 5;
    double *next = R + n_regs * C; /* the updates (and the condition) before they are carried */
    double steps[C], until[C];
    int64_t element[C];
    for (int64_t lo = 0; lo < total; lo += C) {
        int64_t active = total - lo < C ? total - lo : C;
        for (int64_t j = 0; j < active; j++) {
            element[j] = lo + j;
            until[j] = 0.0;
            steps[j] = pi[0][loop_offset(lo + j, shape, si[0], nd)];
            for (int64_t k = 1; k < nin; k++) R[(k - 1) * C + j] = pi[k][loop_offset(lo + j, shape, si[k], nd)];
            for (int64_t k = 0; k < n_consts; k++) R[const_regs[k] * C + j] = const_values[k];
        }
        for (int64_t step = 0; active > 0; step++) {
            /* Elements done (their condition held, or n_steps run) leave: their outputs are
             * written and the last running element takes their column. Only the carried
             * values and the constant inputs move: the inner constants are the same in every
             * column and the nodes' values are computed afresh each step. */
            int64_t kept = active;
            for (int64_t j = 0; j < kept;) {
                if (until[j] == 0.0 && step < steps[j]) {
                    j++;
                    continue;
                }
                for (int64_t k = 0; k < n_update; k++)
                    po[k][loop_offset(element[j], shape, so[k], nd)] = R[k * C + j];
                if (is_while) po[n_update][loop_offset(element[j], shape, so[n_update], nd)] = until[j];
                kept--;
                for (int64_t r = 0; r < nin - 1; r++) R[r * C + j] = R[r * C + kept];
                element[j] = element[kept], steps[j] = steps[kept], until[j] = until[kept];
            }
            active = kept;
            if (!active) break;
            for (int64_t i = 0; i < n_ops; i++) {
                const int64_t *o = ops + 5 * i;
                if (elementwise_row(o[0], active, R + o[1] * C, 1, R + o[2] * C, 1, R + o[3] * C, 1, R + o[4] * C, 1)) {
                    free(R);
                    return 1;
                }
            }
            for (int64_t k = 0; k < n_update + is_while; k++)
                memcpy(next + k * C, R + results[k] * C, (size_t)active * sizeof(double));
            for (int64_t k = 0; k < n_update; k++) memcpy(R + k * C, next + k * C, (size_t)active * sizeof(double));
            if (is_while)
                for (int64_t j = 0; j < active; j++) until[j] = next[n_update * C + j] != 0.0 ? 1.0 : 0.0;
        }
    }
    free(R);
    return 0;
}

/* -- the other instructions --------------------------------------------------------------- */

/* [GATHER, n, out, in, offsets]: out[k] = in[offsets[k]] (the offsets of every element an
 * advanced index reads, worked out from the constant indices when the program was written;
 * stored as 32-bit integers, two to a constant, as are a scatter's). Compiled for AVX2 too:
 * its gather instructions took a million rows' gathers from 4.4-4.6 to 4.0-4.1 ms of a
 * gradient. */
WIDE static int gather(const int64_t *op, double *work, const double *consts, int64_t nw, int64_t lo, int64_t hi) {
    double *po = at(work, consts, lo, op[2]);
    const double *pi = at(work, consts, lo, op[3]);
    const int32_t *off = (const int32_t *)at(work, consts, 0, op[4]);
    for (int64_t k = lo; k < hi; k++) po[k] = pi[off[k]];
    return 0;
}

/* [SCATTER, set, n, out, out_offsets, y, y_offsets]: out[out_offsets[k]] += y[y_offsets[k]]
 * (or =), in order, so repeated offsets accumulate; y_offsets -1: y[k]. */
static int scatter(const int64_t *op, double *work, const double *consts, int64_t nw, int64_t lo, int64_t hi) {
    double *po = at(work, consts, lo, op[3]);
    const int32_t *oo = (const int32_t *)at(work, consts, 0, op[4]);
    const double *py = at(work, consts, lo, op[5]);
    if (op[6] < 0) { /* y in order */
        if (op[1]) {
            for (int64_t k = lo; k < hi; k++) po[oo[k]] = py[k];
        } else {
            for (int64_t k = lo; k < hi; k++) po[oo[k]] += py[k];
        }
        return 0;
    }
    const int32_t *yo = (const int32_t *)at(work, consts, 0, op[6]);
    if (op[1]) {
        for (int64_t k = lo; k < hi; k++) po[oo[k]] = py[yo[k]];
    } else {
        for (int64_t k = lo; k < hi; k++) po[oo[k]] += py[yo[k]];
    }
    return 0;
}

/* [MATMUL, m, n, k, out, out_rs, out_cs, A, A_rs, A_cs, B, B_rs, B_cs, alpha, C, C_rs, C_cs, beta]:
 * out = alpha A B + beta C (C = -1: none), its rows [lo, hi). out may be C itself. */
/* alpha acc + beta C at row i, column j (C optional). */
static inline double matmul_result(double acc, double alpha, const double *pc, double beta, int64_t at) {
    double value = alpha * acc;
    if (pc && beta != 0.0) value += beta * pc[at];
    return value;
}

WIDE static int matmul(const int64_t *op, double *work, const double *consts, int64_t nw, int64_t lo, int64_t hi) {
    int64_t n = op[2], k = op[3];
    double *po = at(work, consts, lo, op[4]);
    const double *pa = at(work, consts, lo, op[7]);
    const double *pb = at(work, consts, lo, op[10]);
    double alpha = *at(work, consts, lo, op[13]);
    const double *pc = op[14] >= 0 ? at(work, consts, lo, op[14]) : NULL;
    double beta = pc ? *at(work, consts, lo, op[17]) : 0.0;
    (void)nw;
    if (n == 1 && op[8] == 1 && op[1] > 1) {
        /* A stored by columns (engine.py stores a constant design so): each row's sum in the
         * same order, a chunk of rows at a time down each column (the loop over rows
         * vectorises). One row (a dot product over the levels) is the long dot below: here
         * its one running sum waited on itself 100,000 times. */
        enum { ROWS = 256 };
        double acc[ROWS];
        for (int64_t i0 = lo; i0 < hi; i0 += ROWS) {
            int64_t m = hi - i0 < ROWS ? hi - i0 : ROWS;
            for (int64_t r = 0; r < m; r++) acc[r] = 0.0;
            for (int64_t l = 0; l < k; l++) {
                const double *column = pa + i0 + l * op[9];
                double b = pb[l * op[11]];
                for (int64_t r = 0; r < m; r++) acc[r] += column[r] * b;
            }
            for (int64_t r = 0; r < m; r++) po[(i0 + r) * op[5]] = matmul_result(acc[r], alpha, pc, beta, (i0 + r) * op[15]);
        }
        return 0;
    }
    for (int64_t i = lo; i < hi; i++) {
        for (int64_t j = 0; j < n; j++) {
            const double *ra = pa + i * op[8], *cb = pb + j * op[12];
            double acc = 0.0;
            int64_t l = 0;
            if (k >= 16 && op[9] == 1 && op[11] == 1) {
                /* a long dot product of two contiguous vectors: four running sums */
                double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
                for (; l + 4 <= k; l += 4) {
                    a0 += ra[l] * cb[l];
                    a1 += ra[l + 1] * cb[l + 1];
                    a2 += ra[l + 2] * cb[l + 2];
                    a3 += ra[l + 3] * cb[l + 3];
                }
                acc = (a0 + a1) + (a2 + a3);
            }
            for (; l < k; l++) acc += ra[l * op[9]] * cb[l * op[11]];
            po[i * op[5] + j * op[6]] = matmul_result(acc, alpha, pc, beta, i * op[15] + j * op[16]);
        }
    }
    return 0;
}

/* [CHOLESKY, n, out, in, in_rs, in_cs, lower]: out (contiguous) the Cholesky factor. */
static int cholesky(const int64_t *op, double *work, const double *consts, int64_t nw) {
    int64_t n = op[1], rs = op[4], cs = op[5];
    double *L = at(work, consts, 0, op[2]);
    const double *A = at(work, consts, 0, op[3]);
    for (int64_t i = 0; i < n * n; i++) L[i] = 0.0;
    for (int64_t j = 0; j < n; j++) {
        double d = A[j * rs + j * cs];
        for (int64_t l = 0; l < j; l++) d -= L[j * n + l] * L[j * n + l];
        if (!(d > 0.0)) return 2;
        L[j * n + j] = sqrt(d);
        for (int64_t i = j + 1; i < n; i++) {
            double v = A[i * rs + j * cs];
            for (int64_t l = 0; l < j; l++) v -= L[i * n + l] * L[j * n + l];
            L[i * n + j] = v / L[j * n + j];
        }
    }
    if (!op[6]) { /* upper: the transpose */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i + 1; j < n; j++) {
                L[i * n + j] = L[j * n + i];
                L[j * n + i] = 0.0;
            }
    }
    return 0;
}

/* [SOLVE, n, nrhs, out, A, A_rs, A_cs, b, b_rs, b_cs, lower, unit]: out (contiguous n x nrhs)
 * solves A out = b for a triangular A (the transposes were folded into A's strides). */
static int solve_triangular(const int64_t *op, double *work, const double *consts, int64_t nw) {
    int64_t n = op[1], nrhs = op[2], ars = op[5], acs = op[6], lower = op[10], unit = op[11];
    double *x = at(work, consts, 0, op[3]);
    const double *A = at(work, consts, 0, op[4]);
    const double *b = at(work, consts, 0, op[7]);
    for (int64_t c = 0; c < nrhs; c++) {
        for (int64_t t = 0; t < n; t++) {
            int64_t i = lower ? t : n - 1 - t;
            double acc = b[i * op[8] + c * op[9]];
            if (lower)
                for (int64_t l = 0; l < i; l++) acc -= A[i * ars + l * acs] * x[l * nrhs + c];
            else
                for (int64_t l = i + 1; l < n; l++) acc -= A[i * ars + l * acs] * x[l * nrhs + c];
            x[i * nrhs + c] = unit ? acc : acc / A[i * ars + i * acs];
        }
    }
    return 0;
}

/* [EW, code, nin, 1, n, out, out_stride, (in, in_stride) x nin] over the elements [lo, hi)
 * (a reduction into one element accumulates: its out and first input have stride 0). */
static int elementwise_rows(const int64_t *op, double *work, const double *consts, int64_t nw, int64_t lo,
                            int64_t hi) {
    int64_t nin = op[2];
    double *po = at(work, consts, lo, op[5]) + lo * op[6];
    const double *pi[3] = {po, po, po};
    int64_t s[3] = {0, 0, 0};
    for (int64_t k = 0; k < nin && k < 3; k++) {
        s[k] = op[8 + 2 * k];
        pi[k] = at(work, consts, lo, op[7 + 2 * k]) + lo * s[k];
    }
    return elementwise_row(op[1], hi - lo, po, op[6], pi[0], s[0], pi[1], s[1], pi[2], s[2]);
}

/* [BLOCK, rows, chunk, count, (length, instruction..) x count]: the instructions, each going
 * over the same rows element by element (bayesmm/inference/blocks.py checks that), run a
 * chunk of rows at a time, so that each chunk's values are still in the cache when the next
 * instruction reads them. */
static int block(const int64_t *op, double *work, const double *consts, int64_t nw) {
    int64_t rows = op[1], chunk = op[2], count = op[3];
    for (int64_t lo = 0; lo < rows; lo += chunk) {
        int64_t hi = lo + chunk < rows ? lo + chunk : rows;
        const int64_t *inner = op + 4;
        for (int64_t j = 0; j < count; j++) {
            const int64_t *body = inner + 1;
            int status;
            switch (body[0]) {
                case OP_EW: status = elementwise_rows(body, work, consts, nw, lo, hi); break;
                case OP_GATHER: status = gather(body, work, consts, nw, lo, hi); break;
                case OP_SCATTER: status = scatter(body, work, consts, nw, lo, hi); break;
                case OP_MATMUL: status = matmul(body, work, consts, nw, lo, hi); break;
                default: status = 6;
            }
            if (status) return status;
            inner += inner[0];
        }
    }
    return 0;
}

/* Run the program's instructions on x; returns 0, or an error code. */
static int run(const int64_t *ints, const double *consts, const double *x, double **work_out) {
    int64_t n_work = ints[H_WORK];
    double *work = workspace(n_work);
    if (!work) return 5;
    memcpy(work, x, (size_t)ints[H_NDIM] * sizeof(double));
    const int64_t *op = ints + ints[H_CODE], *end = ints + ints[H_END];
    while (op < end) {
        int64_t length = op[0], status = 0;
        const int64_t *body = op + 1;
        switch (body[0]) {
            case OP_FILL: {
                double *p = at(work, consts, 0, body[1]);
                double value = *at(work, consts, 0, body[3]);
                for (int64_t i = 0; i < body[2]; i++) p[i] = value;
                break;
            }
            case OP_EW: status = elementwise(body, work, consts, n_work); break;
            case OP_PICK: status = elementwise_pick(body, work, consts, n_work); break;
            case OP_GATHER: status = gather(body, work, consts, n_work, 0, body[1]); break;
            case OP_SCATTER: status = scatter(body, work, consts, n_work, 0, body[2]); break;
            case OP_MATMUL: status = matmul(body, work, consts, n_work, 0, body[1]); break;
            case OP_BLOCK: status = block(body, work, consts, n_work); break;
            case OP_CHOLESKY: status = cholesky(body, work, consts, n_work); break;
            case OP_SOLVE: status = solve_triangular(body, work, consts, n_work); break;
            case OP_LOOP: status = scalar_loop(body, work, consts); break;
            default: status = 6;
        }
        if (status) return (int)status;
        op += length;
    }
    *work_out = work;
    return 0;
}

/* The program of user_data's pair of (address, length) pairs ``which``: 0 the log-density's,
 * 1 the expansion's. */
static void unpack_program(void *user_data, int which, const int64_t **ints, const double **floats) {
    const uint64_t *user = (const uint64_t *)user_data + 4 * which;
    *ints = (const int64_t *)(uintptr_t)user[0];
    *floats = (const double *)(uintptr_t)user[2];
}

/* Copy a strided output (address, stride, length) into out. */
static void copy_out(const int64_t *ints, const double *consts, double *work, int64_t field, double *out) {
    int64_t address = ints[field], stride = ints[field + 1], length = ints[field + 2];
    const double *p = at(work, consts, 0, address);
    for (int64_t i = 0; i < length; i++) out[i] = p[i * stride];
}

int64_t bayesmm_engine_logp(uint64_t dim, const double *x, double *grad, double *logp, void *user_data) {
    const int64_t *ints;
    const double *consts;
    unpack_program(user_data, 0, &ints, &consts);
    if ((int64_t)dim != ints[H_NDIM]) return -1;
    double *work = NULL;
    int status = run(ints, consts, x, &work);
    if (status) return 10 + status;
    copy_out(ints, consts, work, H_OUT_A, logp);
    copy_out(ints, consts, work, H_OUT_B, grad);
    if (!isfinite(*logp)) return 4; /* before the gradient: at -inf it may be NaN too */
    for (uint64_t i = 0; i < dim; i++)
        if (!isfinite(grad[i])) return 3;
    return 0;
}

int64_t bayesmm_engine_expand(uint64_t dim, uint64_t expanded, const double *x, double *out, void *user_data) {
    const int64_t *ints;
    const double *consts;
    unpack_program(user_data, 1, &ints, &consts);
    if ((int64_t)dim != ints[H_NDIM] || (int64_t)expanded != ints[H_OUT_A + 2]) return -1;
    double *work = NULL;
    if (run(ints, consts, x, &work)) return -2;
    copy_out(ints, consts, work, H_OUT_A, out);
    return 0;
}

/* bayesmm.inference.kernel in C: the integrated-out Gaussian model's log-density with its
 * gradient, and the expansion of a draw into the trace, for every model the kernel covers
 * (bayesmm/inference/kernel.py's docstring has the formulas). Built into the extension module
 * bayesmm.inference._kernel when bayesmm is installed (kernel_module.c, setup.py); the
 * header's field numbers (N_DIM, ..., HEADER) come from kernel_fields.h. Both functions have
 * nutpie's C signatures; user_data points to four uint64: the address and length of the
 * integer program, then of the float program. */

#include <math.h>
#include <stdint.h>

#define SECTION_I(field, i) ints[ints[field] + (i)]
#define SECTION_F(field, i) floats[ints[field] + (i)]

static void unpack(void *user_data, const int64_t **ints, const double **floats) {
    const uint64_t *user = (const uint64_t *)user_data;
    *ints = (const int64_t *)(uintptr_t)user[0];
    *floats = (const double *)(uintptr_t)user[2];
}

/* Constrained values, their derivatives in x, the priors' derivatives in the values; returns
 * the priors' log-densities plus the transforms' log-Jacobians. */
static double constrain(const int64_t *ints, const double *floats, const double *x, double *values,
                        double *dvalues, double *dlogp) {
    int64_t n = ints[N_DIM];
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        int64_t t = SECTION_I(O_TRANSFORM, i);
        double xi = x[i], v, dv;
        if (t == 0) {
            v = xi;
            dv = 1.0;
        } else if (t == 1) {
            v = exp(xi);
            dv = v;
            total += xi;
        } else {
            v = 1.0 / (1.0 + exp(-xi));
            dv = v * (1.0 - v);
            total += log(v) + log1p(-v);
        }
        values[i] = v;
        dvalues[i] = dv;
        int64_t code = SECTION_I(O_FAMILY, i);
        double p1 = SECTION_F(F_P1, i), p2 = SECTION_F(F_P2, i), p3 = SECTION_F(F_P3, i);
        total += SECTION_F(F_CONST, i);
        if (code == 0) {
            double z = (v - p1) / p2;
            total -= 0.5 * z * z;
            dlogp[i] = -z / p2;
        } else if (code == 1 || code == 3) {
            double d = code == 1 ? v - p1 : v;
            total -= 0.5 * (p3 + 1.0) * log1p(d * d / (p3 * p2 * p2));
            dlogp[i] = -(p3 + 1.0) * d / (p3 * p2 * p2 + d * d);
        } else if (code == 2) {
            total -= 0.5 * (v / p2) * (v / p2);
            dlogp[i] = -v / (p2 * p2);
        } else if (code == 4) {
            total -= log1p((v / p2) * (v / p2));
            dlogp[i] = -2.0 * v / (p2 * p2 + v * v);
        } else if (code == 5) {
            total -= p2 * v;
            dlogp[i] = -p2;
        } else {
            total += (p1 - 1.0) * log(v) + (p2 - 1.0) * log1p(-v);
            dlogp[i] = (p1 - 1.0) / v - (p2 - 1.0) / (1.0 - v);
        }
    }
    return total;
}

static void thetas(const int64_t *ints, const double *floats, const double *values, double *theta) {
    for (int64_t j = 0; j < ints[P]; j++)
        theta[j] = values[SECTION_I(O_THETA, j)] * SECTION_F(F_MULT, j);
}

/* The SDs, the (q, q) factor L and the correlations' Cholesky factors C (row-major), with
 * the vine's `left` before each pair and its partial correlations z. */
static void factor(const int64_t *ints, const double *values, double *sds, double *L, double *C,
                   double *left, double *z) {
    int64_t q = ints[Q], k = 0;
    for (int64_t c = 0; c < q; c++) sds[c] = values[SECTION_I(O_SD, c)];
    for (int64_t c = 0; c < q * q; c++) L[c] = C[c] = 0.0;
    for (int64_t t = 0; t < ints[T]; t++) {
        int64_t s = SECTION_I(O_TSTART, t), size = SECTION_I(O_TSIZE, t);
        if (SECTION_I(O_TKIND, t) == 0) {
            for (int64_t c = s; c < s + size; c++) C[c * q + c] = 1.0;
        } else {
            int64_t cpc = SECTION_I(O_TCPC, t), m = 0;
            double rest[size];
            for (int64_t j = 0; j < size; j++) rest[j] = 1.0;
            C[s * q + s] = 1.0;
            for (int64_t i = 0; i < size - 1; i++) {
                for (int64_t j = i + 1; j < size; j++, k++, m++) {
                    z[k] = 2.0 * values[cpc + m] - 1.0;
                    left[k] = rest[j];
                    double cji = z[k] * sqrt(rest[j]);
                    C[(s + j) * q + s + i] = cji;
                    rest[j] -= cji * cji;
                    if (i == j - 1) C[(s + j) * q + s + j] = sqrt(rest[j]);
                }
            }
        }
        for (int64_t a = s; a < s + size; a++)
            for (int64_t b = s; b <= a; b++) L[a * q + b] = sds[a] * C[a * q + b];
    }
}

/* out = (C C^T)^-1 b for the lower Cholesky factor C (q x q, row-major). */
static void solve(const double *C, const double *b, double *out, int64_t q) {
    for (int64_t i = 0; i < q; i++) {
        double acc = b[i];
        for (int64_t m = 0; m < i; m++) acc -= C[i * q + m] * out[m];
        out[i] = acc / C[i * q + i];
    }
    for (int64_t i = q - 1; i >= 0; i--) {
        double acc = out[i];
        for (int64_t m = i + 1; m < q; m++) acc -= C[m * q + i] * out[m];
        out[i] = acc / C[i * q + i];
    }
}

/* The integrated-out log-likelihood; its gradient added into g_theta and g_L, and in sigma
 * returned through g_sigma. */
static double woodbury(const int64_t *ints, const double *floats, const double *theta, const double *L,
                       double sigma, double *g_theta, double *g_L, double *g_sigma) {
    int64_t p = ints[P], q = ints[Q], nJ = ints[J];
    double n = floats[ints[F_N]];
    double delta[p > 0 ? p : 1];
    for (int64_t j = 0; j < p; j++) delta[j] = theta[j] - SECTION_F(F_THETA_LS, j);
    double rss = floats[ints[F_RSS]];
    const double *DtD = floats + ints[F_DTD];
    for (int64_t a = 0; a < p; a++) {
        double acc = 0.0;
        for (int64_t b = 0; b < p; b++) acc += DtD[a * p + b] * delta[b];
        rss += delta[a] * acc;
        g_theta[a] -= acc;
    }
    const double *ZtZ = floats + ints[F_ZTZ], *Zte = floats + ints[F_ZTE], *ZtD = floats + ints[F_ZTD];
    double s2 = sigma * sigma;
    int64_t nJ_done = 0;
    double r[q], GL[q * q], A[q * q], w[q], a[q], La[q], Ainv[q * q], unit[q];
    double logdet = 0.0, quad = 0.0, trace = 0.0, a2 = 0.0;
    if (q == 1) { /* one column per level (random intercepts): the same, in scalars */
        double sd1 = L[0], g_l = 0.0;
        for (int64_t lev = 0; lev < nJ; lev++) {
            const double *X = ZtD + lev * p;
            double r1 = Zte[lev];
            for (int64_t b = 0; b < p; b++) r1 -= X[b] * delta[b];
            double gl = ZtZ[lev] * sd1, A1 = s2 + sd1 * gl, inverse = 1.0 / A1, a1 = sd1 * r1 * inverse;
            logdet += log(A1);
            quad += sd1 * r1 * a1;
            a2 += a1 * a1;
            trace += inverse;
            g_l += -gl * inverse + (r1 - gl * a1) * a1 / s2;
            double la = sd1 * a1;
            for (int64_t b = 0; b < p; b++) g_theta[b] -= X[b] * la;
        }
        g_L[0] += g_l;
        nJ_done = nJ;
    }
    for (int64_t lev = nJ_done; lev < nJ; lev++) {
        const double *G = ZtZ + lev * q * q, *e = Zte + lev * q, *X = ZtD + lev * q * p;
        for (int64_t c = 0; c < q; c++) {
            double acc = e[c];
            for (int64_t b = 0; b < p; b++) acc -= X[c * p + b] * delta[b];
            r[c] = acc;
        }
        for (int64_t c = 0; c < q; c++)
            for (int64_t m = 0; m < q; m++) {
                double acc = 0.0;
                for (int64_t b = 0; b < q; b++) acc += G[c * q + b] * L[b * q + m];
                GL[c * q + m] = acc;
            }
        for (int64_t i = 0; i < q; i++)
            for (int64_t m = 0; m <= i; m++) {
                double acc = i == m ? s2 : 0.0;
                for (int64_t b = 0; b < q; b++) acc += L[b * q + i] * GL[b * q + m];
                A[i * q + m] = acc;
            }
        for (int64_t i = 0; i < q; i++)
            for (int64_t m = 0; m <= i; m++) {
                double acc = A[i * q + m];
                for (int64_t b = 0; b < m; b++) acc -= A[i * q + b] * A[m * q + b];
                if (i == m) {
                    A[i * q + i] = sqrt(acc);
                    logdet += 2.0 * log(A[i * q + i]);
                } else {
                    A[i * q + m] = acc / A[m * q + m];
                }
            }
        for (int64_t i = 0; i < q; i++) {
            double acc = 0.0;
            for (int64_t b = 0; b < q; b++) acc += L[b * q + i] * r[b];
            w[i] = acc;
        }
        solve(A, w, a, q);
        for (int64_t i = 0; i < q; i++) {
            quad += w[i] * a[i];
            a2 += a[i] * a[i];
        }
        for (int64_t col = 0; col < q; col++) {
            for (int64_t i = 0; i < q; i++) unit[i] = i == col ? 1.0 : 0.0;
            solve(A, unit, La, q);
            for (int64_t i = 0; i < q; i++) Ainv[i * q + col] = La[i];
            trace += Ainv[col * q + col];
        }
        for (int64_t c = 0; c < q; c++) {
            double ra = r[c];
            for (int64_t m = 0; m < q; m++) ra -= GL[c * q + m] * a[m];
            for (int64_t m = 0; m < q; m++) {
                double acc = 0.0;
                for (int64_t b = 0; b < q; b++) acc += GL[c * q + b] * Ainv[b * q + m];
                g_L[c * q + m] += -acc + ra * a[m] / s2;
            }
        }
        for (int64_t c = 0; c < q; c++) {
            double acc = 0.0;
            for (int64_t m = 0; m < q; m++) acc += L[c * q + m] * a[m];
            La[c] = acc;
        }
        for (int64_t b = 0; b < p; b++) {
            double acc = 0.0;
            for (int64_t c = 0; c < q; c++) acc += X[c * p + b] * La[c];
            g_theta[b] -= acc;
        }
    }
    for (int64_t b = 0; b < p; b++) g_theta[b] /= s2;
    double k = (double)q;
    *g_sigma = -sigma * trace - (n - nJ * k) / sigma + (rss - quad) / (s2 * sigma) - a2 / sigma;
    return -0.5 * (n * log(2.0 * M_PI) + logdet + (n - nJ * k) * log(s2) + (rss - quad) / s2);
}

/* The gradient in L carried back to the SDs and the partial correlations' values. */
static void back_through_factor(const int64_t *ints, const double *sds, const double *C, const double *left,
                                const double *z, const double *g_L, double *g_values) {
    int64_t q = ints[Q], k = 0;
    for (int64_t t = 0; t < ints[T]; t++) {
        int64_t s = SECTION_I(O_TSTART, t), size = SECTION_I(O_TSIZE, t);
        if (SECTION_I(O_TKIND, t) == 0) {
            for (int64_t c = s; c < s + size; c++) g_values[SECTION_I(O_SD, c)] += g_L[c * q + c];
            continue;
        }
        double gC[size * size], g_left[size];
        for (int64_t a = 0; a < size; a++) {
            double acc = 0.0;
            g_left[a] = 0.0;
            for (int64_t b = 0; b < size; b++) gC[a * size + b] = 0.0;
            for (int64_t b = 0; b <= a; b++) {
                acc += g_L[(s + a) * q + s + b] * C[(s + a) * q + s + b];
                gC[a * size + b] = g_L[(s + a) * q + s + b] * sds[s + a];
            }
            g_values[SECTION_I(O_SD, s + a)] += acc;
        }
        int64_t n_pairs = size * (size - 1) / 2, cpc = SECTION_I(O_TCPC, t), m = n_pairs - 1;
        for (int64_t i = size - 2; i >= 0; i--) {
            for (int64_t j = size - 1; j > i; j--, m--) {
                int64_t kk = k + m;
                if (i == j - 1) g_left[j] += gC[j * size + j] * 0.5 / C[(s + j) * q + s + j];
                gC[j * size + i] += g_left[j] * (-2.0 * C[(s + j) * q + s + i]);
                double root = sqrt(left[kk]);
                g_values[cpc + m] += 2.0 * gC[j * size + i] * root;
                if (root > 0.0) g_left[j] += gC[j * size + i] * z[kk] * 0.5 / root;
            }
        }
        k += n_pairs;
    }
}

int64_t bayesmm_logp(uint64_t dim, const double *x, double *grad, double *logp, void *user_data) {
    const int64_t *ints;
    const double *floats;
    unpack(user_data, &ints, &floats);
    if ((int64_t)dim != ints[N_DIM]) return -1;
    int64_t n = ints[N_DIM], p = ints[P], q = ints[Q], pairs = ints[NC] > 0 ? ints[NC] : 1;
    double values[n], dvalues[n], g_values[n], theta[p > 0 ? p : 1], g_theta[p > 0 ? p : 1];
    double sds[q], L[q * q], C[q * q], g_L[q * q], left[pairs], z[pairs], g_sigma;
    double total = constrain(ints, floats, x, values, dvalues, g_values);
    thetas(ints, floats, values, theta);
    for (int64_t j = 0; j < p; j++) g_theta[j] = 0.0;
    for (int64_t c = 0; c < q * q; c++) g_L[c] = 0.0;
    factor(ints, values, sds, L, C, left, z);
    total += woodbury(ints, floats, theta, L, values[ints[SIGMA]], g_theta, g_L, &g_sigma);
    for (int64_t j = 0; j < p; j++) g_values[SECTION_I(O_THETA, j)] += g_theta[j] * SECTION_F(F_MULT, j);
    g_values[ints[SIGMA]] += g_sigma;
    back_through_factor(ints, sds, C, left, z, g_L, g_values);
    for (int64_t i = 0; i < n; i++) {
        int64_t t = SECTION_I(O_TRANSFORM, i);
        grad[i] = g_values[i] * dvalues[i] + (t == 0 ? 0.0 : (t == 1 ? 1.0 : 1.0 - 2.0 * values[i]));
        if (!isfinite(grad[i])) {
            *logp = total;
            return 3;
        }
    }
    *logp = total;
    return isfinite(total) ? 0 : 4;
}

int64_t bayesmm_expand(uint64_t dim, uint64_t expanded, const double *x, double *out, void *user_data) {
    const int64_t *ints;
    const double *floats;
    unpack(user_data, &ints, &floats);
    int64_t n = ints[N_DIM], p = ints[P], q = ints[Q], nf = ints[NF], nc = ints[NC];
    if ((int64_t)dim != n || (int64_t)expanded != n + ints[N_EXTRA]) return -1;
    int64_t pairs = nc > 0 ? nc : 1;
    double values[n + p + nf + q + nc], scratch[n], scratch2[n], L[q * q], C[q * q], left[pairs], z[pairs];
    constrain(ints, floats, x, values, scratch, scratch2);
    double *theta = values + n, *fixef = values + n + p, *sds = values + n + p + nf, *cors = sds + q;
    thetas(ints, floats, values, theta);
    int intercept = floats[ints[F_INTERCEPT]] > 0.0;
    double shift = 0.0;
    for (int64_t j = 0; j < p; j++) shift += SECTION_F(F_CENTER, j) * theta[j];
    for (int64_t i = 0; i < nf; i++) {
        int64_t src = SECTION_I(O_FIXEF, i);
        fixef[i] = theta[src] - (intercept && src == 0 ? shift : 0.0);
    }
    factor(ints, values, sds, L, C, left, z);
    for (int64_t t = 0; t < ints[T]; t++) {
        if (SECTION_I(O_TKIND, t) == 0) continue;
        int64_t s = SECTION_I(O_TSTART, t), size = SECTION_I(O_TSIZE, t), k = SECTION_I(O_TCOR, t);
        for (int64_t a = 0; a < size; a++)
            for (int64_t b = 0; b < a; b++, k++) {
                double acc = 0.0;
                for (int64_t m = 0; m <= b; m++) acc += C[(s + a) * q + s + m] * C[(s + b) * q + s + m];
                cors[k] = acc;
            }
    }
    for (int64_t i = 0; i < n; i++) out[i] = x[i];
    for (int64_t i = 0; i < ints[N_EXTRA]; i++) out[n + i] = values[SECTION_I(O_GATHER, i)];
    return 0;
}

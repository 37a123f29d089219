/*
 * A C consumer of refcomp's conformance vectors (docs/CONFORMANCE.md).
 *
 * It implements, from the schema alone and without Python:
 *   - a naive dense layer   y[n][o] = sum_i x[n][i] * W[o][i] + b[o]
 *   - a naive conv2d        cross-correlation, OIHW weights, NCHW or NHWC,
 *                           stride, dilation, groups, explicit pads
 *   - an int8/uint8 affine quantizer  q = clamp(nearbyintf(x / s) + zp, qmin, qmax)
 *                           in float32, ties to even (the default rounding mode),
 *                           or roundf (ties away from zero, TFLite) for rounding=half_away
 * reads data/conformance/{dense,conv2d,quant_affine}.h5 and reports pass/fail
 * per case.  Layers pass when |y - y_reference| <= bound for every element
 * (the products are exact in double, the sums are in double in input order,
 * then one rounding to float).  Quantizer codes pass when identical, except
 * where near_boundary is 1 (counted apart); the dequantized values
 * (q - zp) * s in float32 must be the same bits.
 *
 * Build: make        (uses pkg-config hdf5, Debian/Ubuntu package libhdf5-dev)
 * Run:   ./conformance ../../data/conformance
 * Every other file of the directory (layer kinds and quantizers this consumer does not
 * implement, e.g. conv1d.h5, max_pool.h5) is reported as one SKIP line naming its kind.
 * Exit status 0 when every case passes (skipped cases and files do not fail).
 */
#define _POSIX_C_SOURCE 200809L                    /* scandir, alphasort */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass = 0, n_fail = 0, n_skip = 0;

/* ---- small HDF5 helpers --------------------------------------------------------- */

/* Read a whole dataset as the given native type; dims (rank <= 4) and rank out. */
static void *read_ds(hid_t loc, const char *name, hid_t mem_type, size_t elem,
                     hsize_t dims[4], int *rank, size_t *count) {
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return NULL;
    hid_t sp = H5Dget_space(ds);
    int r = H5Sget_simple_extent_ndims(sp);
    hsize_t d[8] = {0};
    H5Sget_simple_extent_dims(sp, d, NULL);
    size_t n = 1;
    for (int i = 0; i < r; i++) { n *= d[i]; if (i < 4 && dims) dims[i] = d[i]; }
    void *buf = malloc(n ? n * elem : 1);
    H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp);
    H5Dclose(ds);
    if (rank) *rank = r;
    if (count) *count = n;
    return buf;
}

static int has(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

/* Integer attribute(s) read as long long (scalar or 1-D); returns the count, 0 if absent. */
static int attr_ints(hid_t obj, const char *name, long long *out, int max) {
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    long long tmp[16];
    H5Aread(a, H5T_NATIVE_LLONG, tmp);
    for (int i = 0; i < n && i < max; i++) out[i] = tmp[i];
    H5Sclose(sp);
    H5Aclose(a);
    return (int)n;
}

/* Fixed-length ASCII attribute into buf (NUL-terminated); "" if absent. */
static void attr_str(hid_t obj, const char *name, char *buf, size_t len) {
    buf[0] = 0;
    if (H5Aexists(obj, name) <= 0) return;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    size_t n = H5Tget_size(t);
    char *tmp = calloc(n + 2, 1);
    hid_t mt = H5Tcopy(H5T_C_S1);                   /* NUL-terminated, room for the NUL */
    H5Tset_size(mt, n + 1);
    H5Aread(a, mt, tmp);
    strncpy(buf, tmp, len - 1);
    buf[len - 1] = 0;
    free(tmp);
    H5Tclose(mt);
    H5Tclose(t);
    H5Aclose(a);
}

static void report(const char *file, const char *cas, const char *desc, int ok,
                   const char *detail) {
    const char *v = ok > 0 ? "PASS" : ok == 0 ? "FAIL" : "SKIP";
    if (ok > 0) n_pass++; else if (ok == 0) n_fail++; else n_skip++;
    printf("%-4s %-16s %s  %s%s%s\n", v, file, cas, desc, detail[0] ? "  -- " : "", detail);
}

/* Compare a float result with y_reference within bound; fills detail. */
static int within(const float *y, const double *ref, const double *bound, size_t n,
                  char *detail) {
    size_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)y[i] - ref[i]);
        double r = e / bound[i];
        if (r > worst) worst = r;
        if (!(e <= bound[i])) bad++;
    }
    sprintf(detail, "%zu elements, worst error/bound %.3g%s", n, worst,
            bad ? ", OUT OF BOUND" : "");
    return bad == 0;
}

/* ---- dense ------------------------------------------------------------------------ */
static void dense_case(hid_t g, const char *cas, const char *desc) {
    hsize_t dx[4], dw[4], dy[4];
    int r;
    size_t n;
    float *x = read_ds(g, "x", H5T_NATIVE_FLOAT, 4, dx, &r, &n);
    float *W = read_ds(g, "layers/0000/W", H5T_NATIVE_FLOAT, 4, dw, &r, &n);
    float *b = has(g, "layers/0000/b") ? read_ds(g, "layers/0000/b", H5T_NATIVE_FLOAT, 4,
                                                 NULL, &r, &n) : NULL;
    double *ref = read_ds(g, "y_reference", H5T_NATIVE_DOUBLE, 8, dy, &r, &n);
    double *bound = read_ds(g, "bound", H5T_NATIVE_DOUBLE, 8, NULL, &r, &n);
    size_t N = dx[0], I = dx[1], O = dw[0];
    float *y = malloc(N * O * sizeof(float));
    for (size_t s = 0; s < N; s++)
        for (size_t o = 0; o < O; o++) {
            double acc = 0.0;
            for (size_t i = 0; i < I; i++) acc += (double)x[s * I + i] * (double)W[o * I + i];
            if (b) acc += b[o];
            y[s * O + o] = (float)acc;
        }
    char detail[200];
    report("dense.h5", cas, desc, within(y, ref, bound, N * O, detail), detail);
    free(x); free(W); free(b); free(ref); free(bound); free(y);
}

/* ---- conv2d ----------------------------------------------------------------------- */
static void conv_case(hid_t g, const char *cas, const char *desc) {
    hsize_t dx[4], dw[4], dy[4];
    int r;
    size_t n;
    hid_t L = H5Gopen2(g, "layers/0000", H5P_DEFAULT);
    char layout[16];
    attr_str(L, "layout", layout, sizeof layout);
    long long pads[4] = {0}, st[2] = {1, 1}, dil[2] = {1, 1}, groups = 1;
    attr_ints(L, "pads", pads, 4);
    attr_ints(L, "stride", st, 2);
    attr_ints(L, "dilation", dil, 2);
    attr_ints(L, "groups", &groups, 1);
    float *x = read_ds(g, "x", H5T_NATIVE_FLOAT, 4, dx, &r, &n);
    float *W = read_ds(L, "W", H5T_NATIVE_FLOAT, 4, dw, &r, &n);
    float *b = has(L, "b") ? read_ds(L, "b", H5T_NATIVE_FLOAT, 4, NULL, &r, &n) : NULL;
    double *ref = read_ds(g, "y_reference", H5T_NATIVE_DOUBLE, 8, dy, &r, &n);
    double *bound = read_ds(g, "bound", H5T_NATIVE_DOUBLE, 8, NULL, &r, &n);
    int nhwc = strcmp(layout, "NHWC") == 0;
    long long N = dx[0], C = nhwc ? dx[3] : dx[1], H = nhwc ? dx[1] : dx[2],
              Wd = nhwc ? dx[2] : dx[3];
    long long O = dw[0], Cg = dw[1], KH = dw[2], KW = dw[3], Og = O / groups;
    long long OH = nhwc ? dy[1] : dy[2], OW = nhwc ? dy[2] : dy[3];
    float *y = malloc(N * O * OH * OW * sizeof(float));
    for (long long s = 0; s < N; s++)
        for (long long o = 0; o < O; o++)
            for (long long i = 0; i < OH; i++)
                for (long long j = 0; j < OW; j++) {
                    long long gidx = o / Og;
                    double acc = 0.0;
                    for (long long c = 0; c < Cg; c++)
                        for (long long ki = 0; ki < KH; ki++)
                            for (long long kj = 0; kj < KW; kj++) {
                                long long hh = i * st[0] + ki * dil[0] - pads[0];
                                long long ww = j * st[1] + kj * dil[1] - pads[2];
                                if (hh < 0 || hh >= H || ww < 0 || ww >= Wd) continue;
                                long long cc = gidx * Cg + c;
                                float xv = nhwc ? x[((s * H + hh) * Wd + ww) * C + cc]
                                                : x[((s * C + cc) * H + hh) * Wd + ww];
                                acc += (double)xv * (double)W[((o * Cg + c) * KH + ki) * KW + kj];
                            }
                    if (b) acc += b[o];
                    size_t at = nhwc ? ((s * OH + i) * OW + j) * O + o
                                     : ((s * O + o) * OH + i) * OW + j;
                    y[at] = (float)acc;
                }
    char detail[200];
    report("conv2d.h5", cas, desc, within(y, ref, bound, (size_t)(N * O * OH * OW), detail),
           detail);
    H5Gclose(L);
    free(x); free(W); free(b); free(ref); free(bound); free(y);
}

/* ---- affine quantizer ------------------------------------------------------------- */
static void affine_case(hid_t g, const char *cas, const char *desc) {
    hsize_t dw[4];
    int r;
    size_t n, nc;
    hid_t P = H5Gopen2(g, "params", H5P_DEFAULT);
    char rounding[32], scale_op[32];
    attr_str(P, "rounding", rounding, sizeof rounding);
    attr_str(P, "scale_op", scale_op, sizeof scale_op);
    int away = strcmp(rounding, "half_away") == 0;  /* TFLite's std::round */
    if ((strcmp(rounding, "half_even") && !away) || strcmp(scale_op, "divide")) {
        char detail[120];
        sprintf(detail, "rounding=%s scale_op=%s not implemented here", rounding, scale_op);
        report("quant_affine.h5", cas, desc, -1, detail);
        H5Gclose(P);
        return;
    }
    long long qmin = 0, qmax = 0, axis = -1;
    attr_ints(P, "qmin", &qmin, 1);
    attr_ints(P, "qmax", &qmax, 1);
    attr_ints(P, "axis", &axis, 1);                 /* absent: per tensor */
    float *w = read_ds(g, "w", H5T_NATIVE_FLOAT, 4, dw, &r, &n);
    float *scale = read_ds(P, "scale", H5T_NATIVE_FLOAT, 4, NULL, NULL, &nc);
    int *zp = read_ds(P, "zero_point", H5T_NATIVE_INT, 4, NULL, NULL, &nc);
    int *codes = read_ds(g, "codes", H5T_NATIVE_INT, 4, NULL, NULL, &n);
    float *deq = read_ds(g, "dequantized", H5T_NATIVE_FLOAT, 4, NULL, NULL, &n);
    unsigned char *nb = has(g, "near_boundary") ?
        read_ds(g, "near_boundary", H5T_NATIVE_UCHAR, 1, NULL, NULL, &n) : NULL;
    /* channel of element k along `axis` (C order) */
    size_t inner = 1, len = 1;
    if (axis >= 0) {
        len = dw[axis];
        for (int d = (int)axis + 1; d < r; d++) inner *= dw[d];
    }
    size_t bad = 0, boundary = 0, badv = 0;
    for (size_t k = 0; k < n; k++) {
        size_t c = axis >= 0 ? (k / inner) % len : 0;
        float v = w[k] / scale[c];                  /* one float32 division, RNE */
        float rq = away ? roundf(v) : nearbyintf(v);  /* ties away / to even */
        long long q = (long long)rq + zp[c];
        if (q < qmin) q = qmin;
        if (q > qmax) q = qmax;
        if (q != codes[k]) {
            if (nb && nb[k]) boundary++; else bad++;
        }
        float back = (float)(q - zp[c]) * scale[c];
        if (q == codes[k] && memcmp(&back, &deq[k], 4) != 0) badv++;
    }
    char detail[200];
    sprintf(detail, "%zu codes, %zu mismatches, %zu boundary cases, %zu dequantized bit "
            "mismatches", n, bad, boundary, badv);
    report("quant_affine.h5", cas, desc, bad == 0 && badv == 0, detail);
    H5Gclose(P);
    free(w); free(scale); free(zp); free(codes); free(deq); free(nb);
}

/* ---- driver ----------------------------------------------------------------------- */
static void run_file(const char *dir, const char *file,
                     void (*fn)(hid_t, const char *, const char *)) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { printf("FAIL %s: cannot open\n", path); n_fail++; return; }
    char schema[64];
    attr_str(f, "schema", schema, sizeof schema);
    long long version = 0, cases = 0;
    attr_ints(f, "schema_version", &version, 1);
    attr_ints(f, "n_cases", &cases, 1);
    if (strcmp(schema, "refcomp-conformance") || version != 1) {
        printf("FAIL %s: schema %s version %lld, expected refcomp-conformance 1\n", path,
               schema, version);
        n_fail++;
        H5Fclose(f);
        return;
    }
    for (long long i = 0; i < cases; i++) {
        char cas[32], desc[256];
        snprintf(cas, sizeof cas, "case%04lld", i);
        hid_t g = H5Gopen2(f, cas, H5P_DEFAULT);
        attr_str(g, "description", desc, sizeof desc);
        if (!desc[0]) attr_str(g, "call", desc, sizeof desc);
        fn(g, cas, desc);
        H5Gclose(g);
    }
    H5Fclose(f);
}

static const char *const IMPLEMENTED[] = {"dense.h5", "conv2d.h5", "quant_affine.h5"};

static int is_h5(const struct dirent *e) {
    size_t n = strlen(e->d_name);
    return n > 3 && strcmp(e->d_name + n - 3, ".h5") == 0;
}

/* One SKIP line per vector file this consumer has no implementation for. */
static void skip_others(const char *dir) {
    struct dirent **list;
    int n = scandir(dir, &list, is_h5, alphasort);
    for (int i = 0; i < n; i++) {
        int known = 0;
        for (size_t j = 0; j < sizeof IMPLEMENTED / sizeof *IMPLEMENTED; j++)
            known |= strcmp(list[i]->d_name, IMPLEMENTED[j]) == 0;
        if (!known) {
            char path[1024], kind[64] = "", detail[128];
            long long cases = 0;
            snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
            hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
            if (f >= 0) {
                attr_str(f, "kind", kind, sizeof kind);
                attr_ints(f, "n_cases", &cases, 1);
                H5Fclose(f);
            }
            snprintf(detail, sizeof detail, "kind %s, %lld cases: not implemented here", kind,
                     cases);
            report(list[i]->d_name, "-", "", -1, detail);
        }
        free(list[i]);
    }
    if (n >= 0) free(list);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../../data/conformance";
    run_file(dir, "dense.h5", dense_case);
    run_file(dir, "conv2d.h5", conv_case);
    run_file(dir, "quant_affine.h5", affine_case);
    skip_others(dir);
    printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}

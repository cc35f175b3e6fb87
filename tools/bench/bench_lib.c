/* bench_lib.c - options, numbers, the machine, CPU time and tokens for
 * the benches (bench_lib.h). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_lib.h"

/* ------------------------------------------------------------ options */

#define LIB__MAX_OPTS 40

/* The options of every bench; their offsets are into bench_common. */
static const bench_opt lib__common[] = {
    {"plugin", 0, "FILE", BENCH_OPT_STRING, offsetof(bench_common, plugin), 0, 0, FP_BENCH_PLUGIN,
     NULL, "feed_auth.so to load"},
    {"fp-server", 0, "FILE", BENCH_OPT_STRING, offsetof(bench_common, fp_server), 0, 0,
     FP_BENCH_SOURCE_DIR "/tools/fp-server", NULL, "tools/fp-server"},
    {"keep", 0, NULL, BENCH_OPT_FLAG, offsetof(bench_common, keep), 0, 0, NULL, NULL,
     "keep the temp dir with the servers' logs"},
    {"smoke", 0, NULL, BENCH_OPT_FLAG, offsetof(bench_common, smoke), 0, 0, NULL, NULL,
     "seconds, tiny sizes: fails unless the measured path works (ctest -L bench)"},
    {"bridge", 0, "FILE", BENCH_OPT_STRING, offsetof(bench_common, bridge), 0, 0, FP_BENCH_BRIDGE,
     NULL, "feed-bridge to run"},
    {"log-level", 0, "L", BENCH_OPT_STRING, offsetof(bench_common, log_level), 0, 0, "info", NULL,
     "the bridges' log level"},
};
#define LIB__N_COMMON(with_bridge) ((with_bridge) ? 6 : 4)

/* Stores the value s of option o at its offset in cfg; numbers ("1,2,3"
 * for a list) are checked against min..max. Returns 0 or -1 (printed). */
static int lib__store(const bench_opt *o, void *cfg, const char *s)
{
    char *field = (char *)cfg + o->offset, buf[256], *tok, *end = NULL, *save = NULL;
    int max = o->type == BENCH_OPT_LIST ? BENCH_MAX_LIST : 1;
    bench_list l = {{0}, 0};
    double v;

    if (o->type == BENCH_OPT_FLAG || o->type == BENCH_OPT_STRING) {
        if (o->type == BENCH_OPT_FLAG)
            *(bool *)field = true;
        else
            *(const char **)field = s;
        return 0;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        errno = 0;
        v = strtod(tok, &end);
        if (errno != 0 || end == tok || *end != '\0' || v < o->min || v > o->max || l.n == max) {
            fprintf(stderr, "bench: --%s: \"%s\" is not %s in %g..%g\n", o->name, s,
                    max > 1 ? "a list of up to 8 numbers" : "a number", o->min, o->max);
            return -1;
        }
        l.v[l.n++] = v;
    }
    if (l.n == 0) {
        fprintf(stderr, "bench: --%s: no value\n", o->name);
        return -1;
    }
    if (o->type == BENCH_OPT_LIST)
        *(bench_list *)field = l;
    else if (o->type == BENCH_OPT_SIZE)
        *(size_t *)field = (size_t)l.v[0];
    else if (o->type == BENCH_OPT_INT)
        *(int *)field = (int)l.v[0];
    else
        *(double *)field = l.v[0];
    return 0;
}

/* One --help line per option, with its default. */
static void lib__usage(FILE *f, const bench_opt *o, size_t n)
{
    char left[64], letter[8];
    size_t i;

    for (i = 0; i < n; i++) {
        snprintf(letter, sizeof(letter), o[i].letter ? "-%c, " : "    ", o[i].letter);
        snprintf(left, sizeof(left), "%s--%s %s", letter, o[i].name, o[i].arg ? o[i].arg : "");
        fprintf(f, "  %-24s %s%s%s%s\n", left, o[i].help, o[i].def ? " (" : "",
                o[i].def ? o[i].def : "", o[i].def ? ")" : "");
    }
}

/*
 * getopt_long over the bench's table and the common one. Returns 0, 1
 * after --help, or -1.
 */
int bench_parse(const char *prog, const bench_opt *opts, size_t n_opts, void *cfg, bench_common *c,
                bool with_bridge, int argc, char **argv)
{
    struct option longs[LIB__MAX_OPTS + 2];
    const bench_opt *which[LIB__MAX_OPTS];
    void *where[LIB__MAX_OPTS];
    size_t n_common = LIB__N_COMMON(with_bridge), n = 0, i;
    char shorts[2 * LIB__MAX_OPTS + 2], *sp = shorts;
    int ch, idx;

    memset(c, 0, sizeof(*c));
    for (i = 0; i < n_opts + n_common && n < LIB__MAX_OPTS; i++, n++) {
        which[n] = i < n_opts ? &opts[i] : &lib__common[i - n_opts];
        where[n] = i < n_opts ? cfg : (void *)c;
        longs[n].name = which[n]->name;
        longs[n].has_arg = which[n]->arg != NULL ? required_argument : no_argument;
        longs[n].flag = NULL;
        longs[n].val = 256 + (int)n;
        if (which[n]->def != NULL && lib__store(which[n], where[n], which[n]->def) != 0)
            return -1;
        if (which[n]->letter != 0) {
            *sp++ = (char)which[n]->letter;
            if (which[n]->arg != NULL)
                *sp++ = ':';
        }
    }
    memset(&longs[n], 0, sizeof(longs[n]) * 2);
    longs[n].name = "help";
    longs[n].val = 'h';
    *sp++ = 'h';
    *sp = '\0';
    for (;;) {
        ch = getopt_long(argc, argv, shorts, longs, NULL);
        if (ch == -1)
            break;
        idx = -1;
        for (i = 0; i < n; i++) {
            if (ch == 256 + (int)i || ch == which[i]->letter)
                idx = (int)i;
        }
        if (ch == 'h' || idx < 0) {
            fprintf(ch == 'h' ? stdout : stderr, "usage: %s [options]\n", prog);
            lib__usage(ch == 'h' ? stdout : stderr, opts, n_opts);
            lib__usage(ch == 'h' ? stdout : stderr, lib__common, n_common);
            return ch == 'h' ? 1 : -1;
        }
        if (lib__store(which[idx], where[idx], optarg) != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "bench: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -1;
    }
    for (i = 0; i < n && c->smoke; i++) {
        if (which[i]->smoke != NULL && lib__store(which[i], where[i], which[i]->smoke) != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ numbers */

static int lib__cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int lib__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

void bench_sort_i64(int64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), lib__cmp_i64);
}

double bench_pct_ms(const int64_t *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), lib__cmp_double);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double bench_us_per(double cpu_s, uint64_t n)
{
    return n > 0 ? cpu_s * 1e6 / (double)n : 0.0;
}

void bench_loadavg(char *out, size_t len)
{
    double l[3];

    if (getloadavg(l, 3) == 3)
        snprintf(out, len, "%.2f %.2f %.2f", l[0], l[1], l[2]);
    else
        snprintf(out, len, "?");
}

/* The machine line: CPUs, the model name of /proc/cpuinfo, the load. */
void bench_print_machine(const char *prog)
{
    char line[512], model[256] = "unknown", load[64], *colon;
    FILE *f = fopen("/proc/cpuinfo", "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || colon == NULL)
            continue;
        colon += strspn(colon + 1, " \t") + 1;
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(model, sizeof(model), "%s", colon);
        break;
    }
    if (f != NULL)
        fclose(f);
    bench_loadavg(load, sizeof(load));
    printf("%s: %ld CPUs (%s), load average %s\n", prog, sysconf(_SC_NPROCESSORS_ONLN), model,
           load);
}

/* ------------------------------------------------------------ CPU */

/* Adds what every thread of /proc/<pid> used so far to *t: schedstat
 * (ns on a CPU, ns waiting) and the status file's context switches. */
static void lib__threads(const char *pid, bench_times *t)
{
    char path[600], line[128];
    unsigned long long on, queued;
    struct dirent *d;
    DIR *dir;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%.256s/task", pid);
    dir = opendir(path);
    if (dir == NULL)
        return;
    for (d = readdir(dir); d != NULL; d = readdir(dir)) {
        if (d->d_name[0] < '0' || d->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%.256s/task/%.256s/schedstat", pid, d->d_name);
        f = fopen(path, "r");
        if (f != NULL && fscanf(f, "%llu %llu", &on, &queued) == 2) {
            t->cpu += (double)on / 1e9;
            t->wait += (double)queued / 1e9;
        }
        if (f != NULL)
            fclose(f);
        snprintf(path, sizeof(path), "/proc/%.256s/task/%.256s/status", pid, d->d_name);
        f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                t->vol += strtod(line + 24, NULL);
            else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0)
                t->invol += strtod(line + 27, NULL);
        }
        if (f != NULL)
            fclose(f);
    }
    closedir(dir);
}

/* Busy seconds of all CPUs: /proc/stat's first line minus idle, iowait. */
static double lib__machine_busy(void)
{
    unsigned long long v[8];
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8 || hz <= 0)
        return 0;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
}

/*
 * Every process is attributed by its process group: fp-server starts each
 * server in a session of its own (the PID in its .env), and each bridge
 * leads its own group. Walks /proc once.
 */
void bench_cpu_sample(const long *pgids, int n, bench_cpu *out)
{
    struct rusage ru;
    struct dirent *d;
    long pgrp;
    DIR *dir;
    int k;

    memset(out, 0, sizeof(*out));
    out->t_ns = fp_time_mono_ns();
    out->machine = lib__machine_busy();
    lib__threads("self", &out->self);
    /* Threads that have ended (a connect storm's) count too. */
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->self.cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    dir = opendir("/proc");
    if (dir == NULL)
        return;
    for (d = readdir(dir); d != NULL; d = readdir(dir)) {
        if (d->d_name[0] < '0' || d->d_name[0] > '9')
            continue;
        pgrp = getpgid((pid_t)strtol(d->d_name, NULL, 10));
        for (k = 0; k < n && pgrp > 0; k++) {
            if (pgids[k] == pgrp)
                lib__threads(d->d_name, &out->g[k]);
        }
    }
    closedir(dir);
}

/* *d += sign * *a, field by field. */
static void lib__times_add(bench_times *d, const bench_times *a, double sign)
{
    d->cpu += sign * a->cpu;
    d->wait += sign * a->wait;
    d->vol += sign * a->vol;
    d->invol += sign * a->invol;
}

void bench_cpu_diff(const bench_cpu *a, const bench_cpu *b, bench_cpu *d)
{
    int k;

    *d = *b;
    d->t_ns -= a->t_ns;
    d->machine -= a->machine;
    lib__times_add(&d->self, &a->self, -1);
    for (k = 0; k < BENCH_MAX_GROUPS; k++)
        lib__times_add(&d->g[k], &a->g[k], -1);
}

void bench_cpu_procs(const bench_cpu *d, int n_nodes, bench_times t[BENCH_P_N])
{
    int i;

    memset(t, 0, BENCH_P_N * sizeof(*t));
    for (i = 0; i < n_nodes; i++) {
        lib__times_add(&t[BENCH_P_BRIDGE], &d->g[BENCH_G_BRIDGE(i)], 1);
        lib__times_add(&t[BENCH_P_MOSQ], &d->g[BENCH_G_MOSQ(i)], 1);
    }
    t[BENCH_P_REDIS] = d->g[BENCH_G_REDIS];
    t[BENCH_P_RABBIT] = d->g[BENCH_G_RABBIT];
    t[BENCH_P_SELF] = d->self;
}

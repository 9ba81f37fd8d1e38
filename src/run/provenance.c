// provenance.c: machine signatures and a folder's table of them
// (include/disa/provenance.h).
#include "disa/provenance.h"
#include "disa/arena.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/log.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// one signature

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src && src[0] ? src : "unknown"); }

// The first "model name" of /proc/cpuinfo, or "unknown".
static void cpu_model(char *dst, size_t n) {
    copy(dst, n, NULL);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        for (v++; *v == ' ' || *v == '\t'; v++) {}
        line[strcspn(line, "\n")] = '\0';
        copy(dst, n, v);
        break;
    }
    fclose(f);
}

void machine_sig_local(machine_sig *s, int precision) {
    memset(s, 0, sizeof *s);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    copy(s->host, sizeof s->host, host);
    cpu_model(s->cpu, sizeof s->cpu);
    copy(s->blas, sizeof s->blas, blas_version());
    copy(s->blas_core, sizeof s->blas_core, blas_corename());
    copy(s->precision, sizeof s->precision, precision == PRECISION_BF16 ? "bf16" : "fp32");
    copy(s->bf16_isa, sizeof s->bf16_isa, precision == PRECISION_BF16 ? bf16_isa() : "none");
    s->threads = blas_get_threads();
}

int machine_sig_equal(const machine_sig *a, const machine_sig *b) {
    return strcmp(a->host, b->host) == 0 && strcmp(a->cpu, b->cpu) == 0 && strcmp(a->blas, b->blas) == 0 &&
           strcmp(a->blas_core, b->blas_core) == 0 && strcmp(a->precision, b->precision) == 0 &&
           strcmp(a->bf16_isa, b->bf16_isa) == 0 && a->threads == b->threads;
}

// Whether the thread count changes the bits of s's kernels (see provenance.h).
static int threads_matter(const machine_sig *s) {
    if (strcmp(s->precision, "fp32") != 0) return 1;
    return strcasecmp(s->blas_core, "SkylakeX") != 0 && strcasecmp(s->blas_core, "Cooperlake") != 0;
}

// Appends "; label a vs b" to what[n] at *used.
static void note(char *what, int n, int *used, const char *label, const char *a, const char *b) {
    if (!what || *used >= n) return;
    *used += snprintf(what + *used, (size_t)(n - *used), "%s%s %s vs %s", *used ? "; " : "", label, a, b);
}

static int differ(const machine_sig *a, const machine_sig *b, int hardware, char *what, int n) {
    int used = 0, d = 0;
    if (what && n > 0) what[0] = '\0';
#define FIELD(f, label)                                    \
    if (strcmp(a->f, b->f) != 0) {                         \
        note(what, n, &used, label, a->f, b->f);           \
        d = 1;                                             \
    }
    if (hardware) FIELD(cpu, "CPU")
    FIELD(blas, "BLAS")
    FIELD(blas_core, "OpenBLAS core")
    FIELD(precision, "precision")
    FIELD(bf16_isa, "oneDNN ISA")
#undef FIELD
    if (a->threads != b->threads && (threads_matter(a) || threads_matter(b))) {
        char ta[16], tb[16];
        snprintf(ta, sizeof ta, "%d", a->threads);
        snprintf(tb, sizeof tb, "%d", b->threads);
        note(what, n, &used, "threads", ta, tb);
        d = 1;
    }
    return d;
}

int machine_sig_kernels_differ(const machine_sig *a, const machine_sig *b, char *what, int n) {
    return differ(a, b, 0, what, n);
}

int machine_sig_hardware_differ(const machine_sig *a, const machine_sig *b, char *what, int n) {
    return differ(a, b, 1, what, n);
}

const char *machine_sig_kernels(const machine_sig *s, int with_blas, char *buf, int n) {
    int k = snprintf(buf, (size_t)n, "%s%s%s/%s", with_blas ? s->blas : "", with_blas ? " " : "", s->blas_core,
                     s->precision);
    if (k < n && strcmp(s->precision, "bf16") == 0) k += snprintf(buf + k, (size_t)(n - k), " %s", s->bf16_isa);
    if (k < n && threads_matter(s))
        snprintf(buf + k, (size_t)(n - k), "/%d thread%s", s->threads, s->threads == 1 ? "" : "s");
    return buf;
}

const char *machine_sig_str(const machine_sig *s, char *buf, int n) {
    char isa[48] = "";
    if (strcmp(s->precision, "bf16") == 0) snprintf(isa, sizeof isa, " (oneDNN %s)", s->bf16_isa);
    snprintf(buf, (size_t)n, "%s, %s, %s %s, %s%s, %d thread%s", s->host, s->cpu, s->blas, s->blas_core, s->precision,
             isa, s->threads, s->threads == 1 ? "" : "s");
    return buf;
}

// ----------------------------------------------------------------------------
// a folder's table

void provenance_init(provenance *p) { memset(p, 0, sizeof *p); }

void provenance_free(provenance *p) {
    free(p->sig);
    free(p->rank_sig);
    memset(p, 0, sizeof *p);
}

int provenance_add(provenance *p, const machine_sig *s) {
    for (int i = 0; i < p->n; i++)
        if (machine_sig_equal(&p->sig[i], s)) return i;
    if (mem_grow(&p->sig, &p->cap, p->n, sizeof *p->sig, 8)) return disa_err(DISA_ENOMEM, "out of memory");
    p->sig[p->n] = *s;
    return p->n++;
}

// The string members of a signature, in the order run.json lists them.
#define SIG_STRINGS(X) X(host) X(cpu) X(blas) X(blas_core) X(precision) X(bf16_isa)

void machine_sig_to_json(struct cJSON *o, const machine_sig *s) {
#define X(f) cJSON_AddStringToObject(o, #f, s->f);
    SIG_STRINGS(X)
#undef X
    char t[16];
    snprintf(t, sizeof t, "%d", s->threads);
    cJSON_AddRawToObject(o, "threads", t);  // raw: summary.json's writer keeps numbers as formatted
}

int provenance_from_json(provenance *p, const struct cJSON *arr, const char *path) {
    if (!cJSON_IsArray(arr))
        return disa_err(DISA_EINVAL, "%s: 'signatures' must be an array of machine signatures (rerun with --restart "
                        "to discard the folder's run)", path);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        machine_sig s;
        memset(&s, 0, sizeof s);
        const cJSON *v;
#define X(f)                                                                                                      \
    v = cJSON_GetObjectItemCaseSensitive(e, #f);                                                                  \
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof s.f)                                               \
        return disa_err(DISA_EINVAL, "%s: 'signatures[%d].%s' must be a string of at most %zu characters", path, \
                        i, #f, sizeof s.f - 1);                                                                   \
    snprintf(s.f, sizeof s.f, "%s", v->valuestring);
        SIG_STRINGS(X)
#undef X
        v = cJSON_GetObjectItemCaseSensitive(e, "threads");
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 65536 || v->valuedouble != v->valueint)
            return disa_err(DISA_EINVAL, "%s: 'signatures[%d].threads' must be an integer in 1..65536", path, i);
        s.threads = v->valueint;
        // Appended as listed, so the ledger's indices keep their meaning; a duplicate
        // would make two indices name one signature.
        for (int k = 0; k < p->n; k++)
            if (machine_sig_equal(&p->sig[k], &s))
                return disa_err(DISA_EINVAL, "%s: 'signatures[%d]' repeats 'signatures[%d]'", path, i, k);
        int rc = provenance_add(p, &s);
        if (rc < 0) return rc;
        i++;
    }
    return 0;
}

int provenance_to_json(struct cJSON *o, const provenance *p) {
    cJSON *arr = cJSON_AddArrayToObject(o, "signatures");
    cJSON *ranks = cJSON_AddArrayToObject(o, "rank_signatures");
    if (!arr || !ranks) return disa_err(DISA_ENOMEM, "out of memory");
    for (int i = 0; i < p->n; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) return disa_err(DISA_ENOMEM, "out of memory");
        machine_sig_to_json(e, &p->sig[i]);
        cJSON_AddItemToArray(arr, e);
    }
    for (int r = 0; r < p->world_size; r++) cJSON_AddItemToArray(ranks, cJSON_CreateNumber(p->rank_sig[r]));
    return 0;
}

// "0-3, 5, 7-8" from the sorted v[n] into buf.
static void list_ranges(char *buf, int n, const int *v, int count) {
    int used = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && used < n;) {
        int j = i;
        while (j + 1 < count && v[j + 1] == v[j] + 1) j++;
        if (j == i) used += snprintf(buf + used, (size_t)(n - used), "%s%d", used ? ", " : "", v[i]);
        else used += snprintf(buf + used, (size_t)(n - used), "%s%d-%d", used ? ", " : "", v[i], v[j]);
        i = j + 1;
    }
}

int provenance_set_ranks(provenance *p, const machine_sig *ranks, int world_size, const char *job_name) {
    free(p->rank_sig);
    p->rank_sig = malloc(sizeof(int) * (size_t)(world_size > 0 ? world_size : 1));
    int *members = malloc(sizeof(int) * (size_t)(world_size > 0 ? world_size : 1));
    if (!p->rank_sig || !members) {
        free(members);
        return disa_err(DISA_ENOMEM, "out of memory");
    }
    p->world_size = world_size;
    int known = p->n;
    for (int r = 0; r < world_size; r++) {
        int k = provenance_add(p, &ranks[r]);
        if (k < 0) {
            free(members);
            return k;
        }
        p->rank_sig[r] = k;
    }
    for (int k = known; k < p->n; k++) {
        int m = 0;
        for (int r = 0; r < world_size; r++)
            if (p->rank_sig[r] == k) members[m++] = r;
        char rl[256], desc[320];
        list_ranges(rl, sizeof rl, members, m);
        LOG(LOG_INFO, "%s: machine signature %d, rank%s %s: %s", job_name, k, m == 1 ? "" : "s", rl,
            machine_sig_str(&p->sig[k], desc, sizeof desc));
    }
    free(members);
    return 0;
}

int provenance_check_uniform(const provenance *p, const machine_sig *ranks, int world_size, const ledger *l,
                             const char *name) {
    char what[512], desc[320];
    int *odd = malloc(sizeof(int) * (size_t)(world_size > 0 ? world_size : 1)), n_odd = 0, first = -1;
    if (!odd) return disa_err(DISA_ENOMEM, "out of memory");
    for (int r = 1; r < world_size; r++)
        if (machine_sig_hardware_differ(&ranks[r], &ranks[0], NULL, 0)) {
            if (first < 0) first = r;
            odd[n_odd++] = r;
        }
    if (n_odd) {
        char rl[256];
        list_ranges(rl, sizeof rl, odd, n_odd);
        machine_sig_hardware_differ(&ranks[first], &ranks[0], what, sizeof what);
        free(odd);
        return disa_err(DISA_EINVAL, "%s: require_uniform_hardware: rank%s %s differ%s from rank 0 (rank %d vs rank "
                        "0: %s); nothing was written", name, n_odd == 1 ? "" : "s", rl, n_odd == 1 ? "s" : "",
                        first, what);
    }
    free(odd);
    if (!l) return 0;
    // Units the ledger holds, by the signature that made them: the first that differs.
    int64_t unknown = 0;
    for (int u = 0; u < l->n_units; u++) {
        if (!l->done[u]) continue;
        int s = l->sig[u];
        if (s < 0 || s >= p->n) {
            unknown++;
            continue;
        }
        if (!machine_sig_hardware_differ(&p->sig[s], &ranks[0], what, sizeof what)) continue;
        int units = 0;
        for (int v = 0; v < l->n_units; v++) units += l->done[v] && l->sig[v] == s;
        return disa_err(DISA_EINVAL, "%s: require_uniform_hardware: %d units of %s (from unit %d) were made on "
                        "machine signature %d (%s), the ranks now differ (recorded vs now: %s); resume on hardware "
                        "like the recorded one, or without the option; nothing was written", name, units, l->path, u,
                        s, machine_sig_str(&p->sig[s], desc, sizeof desc), what);
    }
    if (unknown)
        LOG(LOG_WARN, "%s: require_uniform_hardware: %lld units of %s have no recorded machine signature (written "
            "before signatures were recorded) and cannot be checked", name, (long long)unknown, l->path);
    return 0;
}

// ----------------------------------------------------------------------------
// what the ledger's units were made on

void provenance_log_kernels(const provenance *p, const ledger *l, const char *name) {
    if (p->world_size < 1) return;
    char what[512], ka[96], kb[96];
    const machine_sig *r0 = &p->sig[p->rank_sig[0]];
    for (int r = 1; r < p->world_size; r++) {
        const machine_sig *s = &p->sig[p->rank_sig[r]];
        if (!machine_sig_kernels_differ(s, r0, what, sizeof what)) continue;
        LOG(LOG_INFO, "%s: rank %d runs %s, rank 0 %s (%s): their images will not be bitwise reproducible across "
            "them", name, r, machine_sig_kernels(s, 0, ka, sizeof ka), machine_sig_kernels(r0, 0, kb, sizeof kb), what);
        return;
    }
    for (int u = 0; u < l->n_units; u++) {
        int k = l->sig[u];
        if (!l->done[u] || k < 0 || k >= p->n || !machine_sig_kernels_differ(&p->sig[k], r0, what, sizeof what))
            continue;
        LOG(LOG_INFO, "%s: units of the ledger (from unit %d) were made on %s, the ranks now run %s (%s): the images "
            "will not be bitwise reproducible across them", name, u, machine_sig_kernels(&p->sig[k], 0, ka, sizeof ka),
            machine_sig_kernels(r0, 0, kb, sizeof kb), what);
        return;
    }
}

void provenance_count(const provenance *p, const ledger *l, const job *jb, int64_t *images, int64_t *unknown) {
    for (int k = 0; k < p->n; k++) images[k] = 0;
    *unknown = 0;
    for (int u = 0; u < l->n_units; u++) {
        if (!l->done[u]) continue;
        int s = l->sig[u];
        if (s >= 0 && s < p->n) images[s] += job_unit_count(jb, u);
        else *unknown += job_unit_count(jb, u);
    }
}

// 12800 -> "12,800".
static const char *grouped(char *buf, size_t n, long long v) {
    char d[32];
    int len = snprintf(d, sizeof d, "%lld", v < 0 ? -v : v), o = 0;
    if (v < 0 && o < (int)n - 1) buf[o++] = '-';
    for (int i = 0; i < len && o < (int)n - 1; i++) {
        if (i && (len - i) % 3 == 0 && o < (int)n - 1) buf[o++] = ',';
        if (o < (int)n - 1) buf[o++] = d[i];
    }
    buf[o] = '\0';
    return buf;
}

// The image ranges of one kernel class, at most SHOWN of them spelled out.
enum { SHOWN = 3 };
typedef struct class_ranges {
    char text[160];
    int ranges;
    int64_t images;
} class_ranges;

static void add_range(class_ranges *c, int lo, int hi) {
    size_t used = strlen(c->text);
    if (c->ranges++ < SHOWN && used < sizeof c->text) {
        char a[32], b[32];
        grouped(a, sizeof a, lo);
        grouped(b, sizeof b, hi);
        if (lo == hi) snprintf(c->text + used, sizeof c->text - used, "%s%s", used ? ", " : "", a);
        else snprintf(c->text + used, sizeof c->text - used, "%s%s-%s", used ? ", " : "", a, b);
    }
    c->images += hi - lo + 1;
}

int provenance_mixed(const provenance *p, const ledger *l, const job *jb, char *buf, int n) {
    buf[0] = '\0';
    if (p->n < 2) return 0;
    // Kernel classes: signatures that differ only in host, CPU or threads that do not
    // count share one (the relation is an equivalence: whether threads count depends
    // only on fields the class members share). cls[s]: the class's first signature.
    int *cls = malloc(sizeof(int) * (size_t)p->n);
    class_ranges *cr = calloc((size_t)p->n, sizeof(class_ranges));
    if (!cls || !cr) {
        free(cls);
        free(cr);
        return 0;
    }
    int with_blas = 0;
    for (int s = 0; s < p->n; s++) {
        cls[s] = s;
        for (int t = 0; t < s; t++)
            if (!machine_sig_kernels_differ(&p->sig[t], &p->sig[s], NULL, 0)) {
                cls[s] = cls[t];
                break;
            }
        with_blas |= strcmp(p->sig[s].blas, p->sig[0].blas) != 0;
    }
    // Ranges of consecutive images made in one class; a unit not done, or made on an
    // unknown signature, ends a range.
    int cur = -1, lo = 0, hi = -1;
    for (int u = 0; u <= l->n_units; u++) {
        int c = -1;
        if (u < l->n_units && l->done[u] && l->sig[u] >= 0 && l->sig[u] < p->n) c = cls[l->sig[u]];
        if (c != cur || c < 0) {
            if (cur >= 0) add_range(&cr[cur], lo, hi);
            cur = c;
            lo = u < l->n_units ? job_unit_first(jb, u) : 0;
        }
        if (c >= 0) hi = job_unit_first(jb, u) + job_unit_count(jb, u) - 1;
    }
    int classes = 0;
    for (int s = 0; s < p->n; s++) classes += cr[s].ranges > 0;
    if (classes > 1) {
        int used = snprintf(buf, (size_t)n, "images"), listed = 0;
        for (int s = 0; s < p->n && used < n; s++) {
            if (!cr[s].ranges) continue;
            char more[96] = "", k[96], cnt[32];
            if (cr[s].ranges > SHOWN)
                snprintf(more, sizeof more, " and %d more range%s (%s images)", cr[s].ranges - SHOWN,
                         cr[s].ranges - SHOWN == 1 ? "" : "s", grouped(cnt, sizeof cnt, cr[s].images));
            used += snprintf(buf + used, (size_t)(n - used), "%s%s%s on %s", listed++ ? ", " : " ", cr[s].text, more,
                             machine_sig_kernels(&p->sig[s], with_blas, k, sizeof k));
        }
        if (used < n) snprintf(buf + used, (size_t)(n - used), ": not bitwise reproducible across them");
    }
    free(cls);
    free(cr);
    return classes > 1;
}

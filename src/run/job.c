// job.c: job spec parsing and validation, overrides, sweeps, plan (include/disa/job.h).
// The plan follows LTH14/mar engine_mar.py: evaluate (class k gets images
// [k * N/classes, (k+1) * N/classes)).
#include "disa/job.h"
#include "disa/err.h"
#include "disa/json.h"
#include "disa/path.h"
#include "disa/flags.h"
#include "disa/bf16.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const k_top_keys[] = {
    "name", "model", "vae", "features", "reference", "output_dir", "num_images", "eval_bsz", "seed",
    "labels", "png", "sampling", "variants", "description", "require_uniform_hardware", NULL};
static const char *const k_override_flags[] = {
    "output_dir", "num_images", "eval_bsz", "seed", "model", "vae", "features", "reference", NULL};

static int in_list(const char *s, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0) return 1;
    return 0;
}

int job_is_override_flag(const char *flag) {
    return in_list(flag, k_override_flags) || family_is_sampling_key(flag);
}

// The JSON value as the string a command-line flag would carry. Types are exact: a
// number written as a string ("4", "0x2") is refused, since a setting that is a number
// is a number in JSON; and no string-valued setting has a numeric name.
static int value_str(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsNumber(v)) {
        snprintf(buf, n, "%.17g", v->valuedouble);
        return 0;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n) return -1;
    char *end;
    errno = 0;
    (void)strtod(v->valuestring, &end);
    if (v->valuestring[0] && end != v->valuestring && *end == '\0') return -2;
    snprintf(buf, n, "%s", v->valuestring);
    return 0;
}

// Job and variant names: letters, digits, '.', '_', '+', '-', not starting with '.' or
// '-'. A variant's name is a folder under output_dir, so '/' or ".." would write
// elsewhere; the same set for job names keeps run.json, logs and tables plain.
static int check_name(const char *name, size_t max, const char *path, const char *field) {
    size_t n = strlen(name);
    int ok = n >= 1 && n <= max && name[0] != '.' && name[0] != '-';
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
             c == '+' || c == '-';
    }
    if (!ok)
        return disa_err(DISA_EINVAL, "%s: '%s' must be 1..%zu of A-Z a-z 0-9 . _ + - and not start with '.' or "
                        "'-', got \"%s\"", path, field, max, name);
    return 0;
}

// One sampling key of job j's family (or the shared precision) from a command-line
// string. DISA_ENOTFOUND (no message) for a key no family has.
static int set_key(job *j, const char *key, const char *value) {
    return family_sampling_set(job_family(j), &j->params, &j->precision, key, value);
}

static int set_sampling(job *j, const char *file, const char *prefix, const cJSON *obj) {
    if (!cJSON_IsObject(obj)) return disa_err(DISA_EINVAL, "%s: '%s' must be an object", file, prefix);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        char v[64], known[512];
        if (!family_is_sampling_key(it->string))
            return disa_err(DISA_EINVAL, "%s: unknown key '%s.%s' (known: %s)", file, prefix, it->string,
                            family_keys_str(job_family(j), known, sizeof known));
        int t = value_str(it, v, sizeof v);
        if (t == -2)
            return disa_err(DISA_EINVAL, "%s: '%s.%s' must be a JSON number, not the string \"%s\"", file, prefix,
                            it->string, it->valuestring);
        if (t != 0)
            return disa_err(DISA_EINVAL, "%s: '%s.%s' must be a number or a string of at most %zu characters", file,
                            prefix, it->string, sizeof v - 1);
        if (set_key(j, it->string, v) != 0)
            return disa_err_wrap(DISA_EINVAL, "%s: '%s.%s': ", file, prefix, it->string);
    }
    return 0;
}

static int get_int(const cJSON *o, const char *key, long lo, long hi, long *out, const char *file) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 1;
    // Integral and in range before any cast: converting an out-of-range double (1e85,
    // inf) to long is undefined behaviour (found by tests/fuzz/fuzz_job.c).
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return disa_err(DISA_EINVAL, "%s: '%s' must be an integer", file, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return disa_err(DISA_ERANGE, "%s: '%s' must be in %ld..%ld, got %.0f", file, key, lo, hi, v->valuedouble);
    *out = (long)v->valuedouble;
    return 0;
}

static int get_str(const cJSON *o, const char *key, char *dst, size_t n, const char *file) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsString(v)) return disa_err(DISA_EINVAL, "%s: '%s' must be a string", file, key);
    if (strlen(v->valuestring) >= n) return disa_err(DISA_ERANGE, "%s: '%s' is longer than %zu characters", file, key, n - 1);
    snprintf(dst, n, "%s", v->valuestring);
    return 0;
}

static int get_bool(const cJSON *o, const char *key, int *out, const char *file) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 1;
    if (!cJSON_IsBool(v)) return disa_err(DISA_EINVAL, "%s: '%s' must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int check_file(const char *file, const char *key, const char *path) {
    if (!path[0]) return 0;
    if (access(path, R_OK) != 0)
        return disa_err(DISA_ENOTFOUND, "%s: '%s': %s: %s", file, key, path, strerror(errno));
    return 0;
}

static int apply_overrides(job *j, const job_override *ov, int n_ov) {
    for (int i = 0; i < n_ov; i++) {
        const char *f = ov[i].flag, *v = ov[i].value;
        if (family_is_sampling_key(f)) {
            if (set_key(j, f, v) != 0) return DISA_EINVAL;
        } else if (strcmp(f, "output_dir") == 0 || strcmp(f, "model") == 0 || strcmp(f, "vae") == 0 ||
                   strcmp(f, "features") == 0 || strcmp(f, "reference") == 0) {
            char *dst = f[0] == 'o' ? j->output_dir : f[0] == 'm' ? j->model : f[0] == 'v' ? j->vae
                        : f[0] == 'f' ? j->features : j->reference;
            if (strlen(v) >= JOB_PATH_MAX) return disa_err(DISA_EINVAL, "--%s: path too long", f);
            snprintf(dst, JOB_PATH_MAX, "%s", v);
        } else if (strcmp(f, "num_images") == 0 || strcmp(f, "eval_bsz") == 0) {
            long long x;
            if (flag_int(f, v, 1, f[0] == 'n' ? JOB_MAX_IMAGES : JOB_MAX_EVAL_BSZ, &x) != 0) return DISA_EINVAL;
            if (f[0] == 'n') j->num_images = (int)x;
            else j->eval_bsz = (int)x;
        } else if (strcmp(f, "seed") == 0) {
            if (flag_u64(f, v, &j->seed) != 0) return DISA_EINVAL;
        } else {
            return disa_err(DISA_EINVAL, "unknown flag '--%s'", f);
        }
    }
    return 0;
}

// Checks that need the model: class count, latent kind vs VAE, label range.
static int check_against_model(job *j, const char *file) {
    const family *fam = job_family(j);
    void *m;
    int rc = fam->open(&m, j->model);
    if (rc) return disa_err_wrap(rc, "%s: 'model': ", file);
    family_info fi;
    fam->info(m, &fi);
    fam->close(m);
    int classes = fi.class_num;
    if (fi.latent == LATENT_KL16 && !j->vae[0])
        return disa_err(DISA_EINVAL, "%s: 'vae' is required: %s uses the KL-16 tokenizer", file, j->model);
    if (fi.latent == LATENT_PIXELS && j->vae[0])
        return disa_err(DISA_EINVAL, "%s: 'vae' must be null: %s is a pixel-space (patch) model", file, j->model);
    if (j->labels) {
        for (int i = 0; i < j->n_labels; i++)
            if (j->labels[i] < -1 || j->labels[i] >= classes)
                return disa_err(DISA_ERANGE, "%s: 'labels[%d]' must be in -1..%d for this model, got %d", file, i,
                                classes - 1, j->labels[i]);
        if (j->n_labels != j->num_images)
            return disa_err(DISA_EINVAL, "%s: 'labels' has %d entries but num_images is %d", file, j->n_labels,
                            j->num_images);
    } else if (j->num_images % classes != 0) {
        return disa_err(DISA_EINVAL, "%s: num_images %d is not a multiple of the model's %d classes (MAR's plan "
                        "gives every class the same count); change num_images or give 'labels'", file,
                        j->num_images, classes);
    }
    return 0;
}

// The top-level fields of a job file into base (the defaults of main_mar.py where it has
// them). The file's own name names the job when "name" is absent.
static int parse_fields(job *base, const cJSON *root, const char *path) {
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!in_list(it->string, k_top_keys))
            return disa_err(DISA_EINVAL, "%s: unknown key '%s' (known: name model vae features reference output_dir "
                            "num_images eval_bsz seed labels png sampling variants description "
                            "require_uniform_hardware)", path, it->string);
    }
    snprintf(base->file, sizeof base->file, "%s", path);
    base->png = 1;
    base->eval_bsz = 64;  // main_mar.py --eval_bsz default
    base->seed = 1;       // main_mar.py --seed default
    long v;
    int rc;
    if ((rc = get_str(root, "name", base->name, sizeof base->name, path)) < 0) return rc;
    if (rc == 0 && (rc = check_name(base->name, 64, path, "name")) != 0) return rc;
    if (rc == 1) {
        const char *b = strrchr(path, '/');
        snprintf(base->name, sizeof base->name, "%.64s", b ? b + 1 : path);
        char *dot = strrchr(base->name, '.');
        if (dot) *dot = '\0';
        // A file name outside the safe set still names the job, made safe.
        for (char *c = base->name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                  *c == '+' || *c == '-' || (*c == '.' && c != base->name)))
                *c = '_';
        if (!base->name[0]) snprintf(base->name, sizeof base->name, "job");
    }
    if ((rc = get_str(root, "model", base->model, sizeof base->model, path)) < 0) return rc;
    if ((rc = get_str(root, "vae", base->vae, sizeof base->vae, path)) < 0) return rc;
    if ((rc = get_str(root, "features", base->features, sizeof base->features, path)) < 0) return rc;
    if ((rc = get_str(root, "reference", base->reference, sizeof base->reference, path)) < 0) return rc;
    if ((rc = get_str(root, "output_dir", base->output_dir, sizeof base->output_dir, path)) < 0) return rc;
    if ((rc = get_int(root, "num_images", 1, JOB_MAX_IMAGES, &v, path)) < 0) return rc;
    if (rc == 0) base->num_images = (int)v;
    if ((rc = get_int(root, "eval_bsz", 1, JOB_MAX_EVAL_BSZ, &v, path)) < 0) return rc;
    if (rc == 0) base->eval_bsz = (int)v;
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (sd) {
        if (!cJSON_IsNumber(sd) || sd->valuedouble < 0 || sd->valuedouble > 9007199254740991.0 ||
            sd->valuedouble != (double)(uint64_t)sd->valuedouble)
            return disa_err(DISA_EINVAL, "%s: 'seed' must be a non-negative integer", path);
        base->seed = (uint64_t)sd->valuedouble;
    }
    if ((rc = get_bool(root, "png", &base->png, path)) < 0) return rc;
    if ((rc = get_bool(root, "require_uniform_hardware", &base->require_uniform_hardware, path)) < 0) return rc;
    return 0;
}

// "labels": "official" (or absent) keeps base->labels NULL, else a list of integers.
static int parse_labels(job *base, const cJSON *root, const char *path) {
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels"), *it;
    if (!labels || (cJSON_IsString(labels) && strcmp(labels->valuestring, "official") == 0)) return 0;
    if (!cJSON_IsArray(labels))
        return disa_err(DISA_EINVAL, "%s: 'labels' must be \"official\" or an array of class indices", path);
    base->n_labels = cJSON_GetArraySize(labels);
    base->labels = malloc(sizeof(int) * (size_t)(base->n_labels ? base->n_labels : 1));
    if (!base->labels) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
    int i = 0;
    cJSON_ArrayForEach(it, labels) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < INT_MIN ||
            it->valuedouble > INT_MAX)  // range before the cast, as in get_int
            return disa_err(DISA_EINVAL, "%s: 'labels[%d]' must be an integer", path, i);
        base->labels[i++] = it->valueint;
    }
    return 0;
}

// Variant k of vars into j (a copy of base with its own label list): its name, folder
// name check and sampling.
static int apply_variant(job *j, const job *base, const cJSON *vars, int k, const char *path) {
    const cJSON *var = cJSON_GetArrayItem(vars, k), *it;
    char pre[64];
    snprintf(pre, sizeof pre, "variants[%d]", k);
    if (!cJSON_IsObject(var)) return disa_err(DISA_EINVAL, "%s: '%s' must be an object", path, pre);
    const cJSON *vn = cJSON_GetObjectItemCaseSensitive(var, "name");
    char field[80];
    snprintf(field, sizeof field, "%s.name", pre);
    if (!cJSON_IsString(vn)) return disa_err(DISA_EINVAL, "%s: '%s' must be a string (the variant's folder name)", path, field);
    int rc = check_name(vn->valuestring, 48, path, field);
    if (rc) return rc;
    cJSON_ArrayForEach(it, var) {
        if (strcmp(it->string, "name") != 0 && strcmp(it->string, "sampling") != 0)
            return disa_err(DISA_EINVAL, "%s: unknown key '%s.%s' (known: name sampling)", path, pre, it->string);
    }
    for (int q = 0; q < k; q++) {
        const cJSON *other = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(vars, q), "name");
        if (strcmp(other->valuestring, vn->valuestring) == 0)
            return disa_err(DISA_EINVAL, "%s: variant name '%s' appears twice", path, vn->valuestring);
    }
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(var, "sampling");
    char spre[80];
    snprintf(spre, sizeof spre, "%s.sampling", pre);
    if (vs && (rc = set_sampling(j, path, spre, vs)) != 0) return rc;
    snprintf(j->name, sizeof j->name, "%.60s/%s", base->name, vn->valuestring);
    return 0;
}

// Overrides, the variant's folder, then every check of a finished job.
static int finish_job(job *j, int variant, const job_override *ov, int n_ov, const char *path) {
    int rc;
    if ((rc = apply_overrides(j, ov, n_ov)) != 0) return rc;
    if (variant) {
        size_t l = strlen(j->output_dir);
        const char *vn = strrchr(j->name, '/') + 1;
        if (l + 1 + strlen(vn) >= JOB_PATH_MAX) return disa_err(DISA_ERANGE, "%s: output_dir too long", path);
        snprintf(j->output_dir + l, JOB_PATH_MAX - l, "/%s", vn);
    }
    if (!j->model[0]) return disa_err(DISA_EINVAL, "%s: 'model' is required (a MAR, xAR or FlowAR .safetensors file)", path);
    if (!j->output_dir[0]) return disa_err(DISA_EINVAL, "%s: 'output_dir' is required (or give --output_dir)", path);
    if (j->num_images < 1) return disa_err(DISA_EINVAL, "%s: 'num_images' is required (or give --num_images)", path);
    if ((rc = job_family(j)->params_check(&j->params)) != 0) return disa_err_wrap(rc, "%s: %s: ", path, j->name);
    // auto is resolved once every rank is known (generator_share), and checked there.
    if (j->precision != PRECISION_AUTO &&
        (rc = family_precision_check(job_family(j), &j->params, j->precision, 0)) != 0)
        return disa_err_wrap(rc, "%s: %s: ", path, j->name);
    if ((rc = check_file(path, "model", j->model)) || (rc = check_file(path, "vae", j->vae)) ||
        (rc = check_file(path, "features", j->features)) || (rc = check_file(path, "reference", j->reference)))
        return rc;
    return check_against_model(j, path);
}

// The jobs of one parsed file into expanded[*n_exp] (one per variant, or one).
static int expand(job *expanded, int *n_exp, const job *base, const cJSON *vars, int nv, const job_override *ov,
                  int n_ov, const char *path) {
    for (int k = 0; k < (nv ? nv : 1); k++) {
        job *j = &expanded[k];
        *j = *base;
        j->labels = NULL;
        if (base->labels) {
            j->labels = malloc(sizeof(int) * (size_t)(base->n_labels ? base->n_labels : 1));
            if (!j->labels) return disa_err(DISA_ENOMEM, "%s: out of memory", path);
            memcpy(j->labels, base->labels, sizeof(int) * (size_t)base->n_labels);
        }
        *n_exp = k + 1;
        int rc;
        if (nv && (rc = apply_variant(j, base, vars, k, path)) != 0) return rc;
        if ((rc = finish_job(j, nv > 0, ov, n_ov, path)) != 0) return rc;
    }
    return 0;
}

int job_load(job_list *out, const char *path, const job_override *ov, int n_ov) {
    size_t len;
    char *text = NULL;
    cJSON *root = NULL;
    job base;
    memset(&base, 0, sizeof base);
    job *expanded = NULL;
    int n_exp = 0;
    int rc = json_read_file(&text, &len, path, JOB_MAX_FILE_BYTES);
    if (rc == DISA_ERANGE) disa_err_wrap(rc, "job file: ");
    if (!rc) rc = json_parse_strict(&root, text, len, JOB_MAX_LABELS, path);
    if (rc) goto out;
    if (!cJSON_IsObject(root)) {
        rc = disa_err(DISA_EFORMAT, "%s: the top level must be a JSON object", path);
        goto out;
    }
    if ((rc = parse_fields(&base, root, path)) != 0 || (rc = parse_labels(&base, root, path)) != 0) goto out;
    // The family of the model (after a --model override) names the sampling keys.
    const char *model_path = base.model;
    for (int i = 0; i < n_ov; i++)
        if (strcmp(ov[i].flag, "model") == 0) model_path = ov[i].value;
    base.family = family_index(family_for_file(model_path));
    job_family(&base)->params_init(&base.params);
    base.precision = PRECISION_FP32;
    const cJSON *samp = cJSON_GetObjectItemCaseSensitive(root, "sampling");
    if (samp && (rc = set_sampling(&base, path, "sampling", samp)) != 0) goto out;
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(root, "variants");
    int nv = 0;
    if (vars && (!cJSON_IsArray(vars) || (nv = cJSON_GetArraySize(vars)) < 1 || nv > JOB_MAX_VARIANTS)) {
        rc = disa_err(DISA_EINVAL, "%s: 'variants' must be an array of 1..%d objects", path, JOB_MAX_VARIANTS);
        goto out;
    }
    if (!(expanded = calloc((size_t)(nv ? nv : 1), sizeof(job)))) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((rc = expand(expanded, &n_exp, &base, vars, nv, ov, n_ov, path)) != 0) goto out;
    job *grown = realloc(out->jobs, sizeof(job) * (size_t)(out->n + n_exp));
    if (!grown) {
        rc = disa_err(DISA_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    out->jobs = grown;
    memcpy(out->jobs + out->n, expanded, sizeof(job) * (size_t)n_exp);
    out->n += n_exp;
    n_exp = 0;  // ownership of the label arrays moved to out
out:
    for (int k = 0; k < n_exp; k++) free(expanded[k].labels);
    free(expanded);
    free(base.labels);
    cJSON_Delete(root);
    free(text);
    return rc;
}

void job_list_free(job_list *l) {
    for (int i = 0; i < l->n; i++) free(l->jobs[i].labels);
    free(l->jobs);
    l->jobs = NULL;
    l->n = 0;
}

int job_list_keep_variant(job_list *l, const char *variant) {
    int k = 0;
    char names[1024] = "";
    size_t used = 0;
    for (int j = 0; j < l->n; j++) {
        const char *slash = strrchr(l->jobs[j].name, '/');
        if (slash && used < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", slash + 1);
        if (slash && strcmp(slash + 1, variant) == 0) l->jobs[k++] = l->jobs[j];
        else free(l->jobs[j].labels);
    }
    l->n = k;
    if (k == 0)
        return disa_err(DISA_ENOTFOUND, "--variant '%s' matches no variant of the job files (variants: %s)", variant,
                        used ? names : "none");
    return 0;
}

int job_list_check_outputs(const job_list *l) {
    // Compared by what they point to: "g", "g/" and "./g" are one folder.
    char (*canon)[PATH_MAX] = malloc(sizeof *canon * (size_t)(l->n > 0 ? l->n : 1));
    if (!canon) return disa_err(DISA_ENOMEM, "out of memory");
    int rc = 0;
    for (int a = 0; a < l->n && !rc; a++) {
        char what[256];
        snprintf(what, sizeof what, "%s: 'output_dir'", l->jobs[a].name);
        if ((rc = path_check_writable(l->jobs[a].output_dir, 1, what)) == 0)
            rc = path_canonical(canon[a], PATH_MAX, l->jobs[a].output_dir);
        for (int b = 0; b < a && !rc; b++)
            if (strcmp(canon[a], canon[b]) == 0)
                rc = disa_err(DISA_EINVAL, "jobs '%s' and '%s' both write %s; give them different output_dir",
                              l->jobs[b].name, l->jobs[a].name, canon[a]);
    }
    free(canon);
    return rc;
}

const family *job_family(const job *j) { return family_at(j->family); }

const char *job_sampling_str(const job *j, char *buf, int n) {
    return family_sampling_str(job_family(j), &j->params, j->precision, buf, n);
}

int job_label(const job *j, int i, int class_num) {
    if (j->labels) return j->labels[i];
    return i / (j->num_images / class_num);
}

int job_units(const job *j) { return (j->num_images + j->eval_bsz - 1) / j->eval_bsz; }
int job_unit_first(const job *j, int u) { return u * j->eval_bsz; }
int job_unit_count(const job *j, int u) {
    int first = u * j->eval_bsz, rest = j->num_images - first;
    return rest < j->eval_bsz ? rest : j->eval_bsz;
}

int job_identity(const job *j, const char *model_hash, const char *vae_hash, char *buf, int n) {
    char ps[512];
    uint64_t lh = 1469598103934665603ull;  // FNV-1a over the explicit label list
    for (int i = 0; j->labels && i < j->n_labels; i++) {
        lh ^= (uint64_t)(uint32_t)j->labels[i];
        lh *= 1099511628211ull;
    }
    int k = snprintf(buf, (size_t)n,
                     "model_hash=%s\nvae_hash=%s\nnum_images=%d\neval_bsz=%d\nseed=%llu\nlabels=%s%016llx\n"
                     "sampling=%s\npng=%d\n",
                     model_hash, vae_hash, j->num_images, j->eval_bsz, (unsigned long long)j->seed,
                     j->labels ? "list:" : "official:", (unsigned long long)(j->labels ? lh : 0),
                     job_sampling_str(j, ps, sizeof ps), j->png);
    // Only a simulation adds a key, so the folders of real runs keep their identity.
    if (j->sim.on && k >= 0 && k < n) k += snprintf(buf + k, (size_t)(n - k), "simulated=1\n");
    return k < n ? 0 : disa_err(DISA_ERANGE, "job identity longer than %d bytes", n);
}

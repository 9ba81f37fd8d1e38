// loader.h: what the model loaders share (MAR, xAR and FlowAR, and the KL-16 decoder
// where it has the same shape): the "config" JSON a model file carries, read and written
// through a table of its keys; the binding table's bookends and the tensor groups that
// several models name alike (Linear layers, timm's Attention, the SwiGLU Mlp, a head's
// embeddings); opening a file and writing one with generated weights.
//
// The messages are the loaders' own, so a model's errors read the same whatever reads
// them: every one is prefixed by the label (the file name, a preset's name, "--config").
#ifndef DISA_LOADER_H
#define DISA_LOADER_H
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "disa/safetensors.h"

// ----------------------------------------------------------------------------
// config

typedef enum {
    LOADER_INT,     // int field: an integer in lo..hi (hi INT_MAX: no upper bound)
    LOADER_DOUBLE,  // double field: a number in (lo, hi), or (lo, hi] with LOADER_HI_IN;
    LOADER_FLOAT,   // float field: the same; lo = hi = 0: any number
    LOADER_BOOL,    // int field: true or false, 1 or 0
    LOADER_CHOICE,  // int-sized field (an enum): one of `choices`, the field its index
    LOADER_TYPE_COUNT
} loader_type;

enum {
    LOADER_OPTIONAL = 1,  // a missing key gives `def` (else it is an error)
    LOADER_KEEP = 2,      // a missing key leaves the field as the caller set it
    LOADER_HI_IN = 4,     // numbers: hi belongs to the range
    // Numbers: only the type is checked in turn; the range after every other key, as
    // "must be in (LO, HI], got V" (MAR's mlp_ratio).
    LOADER_LATE = 8,
    // INT: any integral number is read, so one beyond an int is named by the range, as
    // written (%g); without it such a number is "not an integer".
    LOADER_WIDE = 16,
};

// One key of a config, written with designators (LOADER_INT_KEY for the plain integers).
typedef struct loader_key {
    const char *key;
    loader_type type;
    size_t offset;
    double lo, hi;
    int flags;
    double def;
    const char *const *choices;  // LOADER_CHOICE: NULL-ended
} loader_key;

// A required integer in lo..hi into T's field.
#define LOADER_INT_KEY(T, name, field, min, max) \
    {.key = (name), .type = LOADER_INT, .offset = offsetof(T, field), .lo = (min), .hi = (max)}

// A model family's config: its format, its keys in the order its JSON lists them, and
// how a wrong format is named.
typedef struct loader_schema {
    const char *format;        // its "format": "disa-mar-1"
    const char *not_one;       // what a file without "config" is: "not a disa MAR file (convert ...)"
    const char *const *known;  // every key it may hold, NULL-ended: another may change the model
    const loader_key *keys;    // the keys read into the struct (and written by loader_config_json)
    int n_keys;
    size_t size;               // sizeof the config struct
    // A wrong "format" is named `must be "F"`, then `, got "G"` when say_got is set; with
    // `kind` set, as another model's file: `is "G", not "F": not a KIND model`, DISA_EINVAL
    // when G is a string (an argument error, not a damaged file).
    int say_got;
    const char *kind;
} loader_schema;

// The config object of a model file: strict JSON (json.h), of format s->format, no key
// outside s->known. 0 with *o the object (the caller's to cJSON_Delete); else *o is NULL
// and the error is DISA_EFORMAT (no config, not JSON, not an object, another format) or
// DISA_EINVAL (an unknown key; another model's format when s->kind is set).
int loader_config_open(cJSON **o, const char *json, const char *label, const loader_schema *s);

// Read keys[0..n) of o into the struct at cfg: the integers first, then the numbers,
// then the rest, each in table order (the order in which the loaders always checked
// them), then LOADER_LATE ranges. The first problem fails:
//   INT     "L: config: 'K' is missing" | "must be an integer" (DISA_EFORMAT),
//           "L: config: 'K' must be >= LO, got V" | "must be in LO..HI, got V" (DISA_ERANGE);
//   numbers "L: config 'K' must be a number" (DISA_EFORMAT, no range), or
//           "L: config 'K' must be a number in (LO, HI)" (DISA_ERANGE, with a range);
//   BOOL    "L: config 'K' must be true or false", CHOICE "L: config 'K' must be a
//           string" | `must be "a" or "b", got "x"` (DISA_EFORMAT).
int loader_config_read(void *cfg, const cJSON *o, const loader_key *keys, int n, const char *label);
// Zero cfg, open (loader_config_open) and read s->keys: 0 with *o the object for the
// family's own checks (the caller's to cJSON_Delete), or the error with *o NULL.
int loader_config_parse(void *cfg, cJSON **o, const char *json, const char *label, const loader_schema *s);
// The config at cfg as the JSON its loader reads back: "format", then s->keys in order
// (ints %d, doubles %.17g, floats %.9g, choices by name).
const char *loader_config_json(const loader_schema *s, const void *cfg, char *buf, int n);

// An official model: its name and the values of its config's keys, in table order.
typedef struct loader_preset {
    const char *name;
    double v[24];
} loader_preset;
// The config JSON of the preset called name in buf (loader_config_json of its values,
// filled into cfg, s->size bytes that this overwrites), or NULL when presets[0..n) has
// none of that name.
const char *loader_preset_json(const loader_schema *s, void *cfg, const loader_preset *presets, int n,
                               const char *name, char *buf, int size);

// The token grid of an image: *seq_h = img_size / (vae_stride * patch_size), or
// DISA_ERANGE "L: config: img_size I is not a multiple of vae_stride*patch_size = G".
int loader_token_grid(int *seq_h, int img_size, int vae_stride, int patch_size, const char *label);

// ----------------------------------------------------------------------------
// binding tables

// Start a table of n entries for a model whose block arrays were allocated (allocated
// 0: one failed): the outputs of a *_tensor_table zeroed, then DISA_ENOMEM "WHAT tensor
// table: out of memory" or 0.
int loader_table_begin(st_table *t, int n, int allocated, st_bind_entry **tab, char **names, int *count,
                       const char *what);
// Hand t over as (tab, names, count), or DISA_EINTERNAL "WHAT tensor table: more tensors
// than counted" (a miscount, a bug) with t freed.
int loader_table_end(st_table *t, st_bind_entry **tab, char **names, int *count, const char *what);

// Linear layers under a prefix ending in '.' ("encoder_blocks.3."): layer i adds
// NAME.weight (out, in) into *dst[2i] and NAME.bias (out) into *dst[2i + 1] (NULL: the
// layer has no bias).
typedef struct loader_linear {
    const char *name;
    int out, in;
} loader_linear;
void loader_add_linears(st_table *t, const float **const *dst, const loader_linear *layers, int n, const char *pre);
// The groups several models share, in this order into dst:
// timm Attention: attn.qkv (3d, d) (dst[1] NULL: without bias), attn.proj (d, d).
void loader_add_attn(st_table *t, const float **const dst[4], int d, const char *pre);
// SwiGLU Mlp of width h: mlp.fc1_g (h, d), mlp.fc1_x (h, d), mlp.fc2 (d, h).
void loader_add_swiglu(st_table *t, const float **const dst[6], int d, int h, const char *pre);
// The Block of xAR and FlowAR (models/xar.py, flowar.py: attn, a SwiGLU mlp, ada_lin) of
// width d and hidden width h, under "STACK.I.": loader_add_attn into dst[0..4), FlowAR's
// attn.rope.freqs (hd / 4) into *freqs unless it is NULL, loader_add_swiglu into
// dst[4..10), ada_lin.1 (6d, d) into dst[10..12).
void loader_add_ar_block(st_table *t, const float **const dst[12], const float **freqs, int hd, const char *stack,
                         int i, int d, int h);
// A flow or diffusion head of width w over inputs of c channels and conditions of z:
// time_embed.mlp.0 (w, 256), time_embed.mlp.2 (w, w), cond_embed (w, z), input_proj (w, c).
void loader_add_head_embeds(st_table *t, const float **const dst[8], int w, int z, int c, const char *pre);

// ----------------------------------------------------------------------------
// model files

// How a model's file is read, over its own typed functions (LOADER_MODEL adapts them).
typedef struct loader_model {
    size_t size;                                                               // sizeof the model
    int (*parse)(void *cfg, const char *json, const char *label);              // *_config_parse
    int (*table)(void *model, st_bind_entry **tab, char **names, int *count);  // *_tensor_table
    void (*close)(void *model);                                                // *_close
    const char *const *ignore;  // prefixes of tensors a file may hold unbound (NULL: none)
    const char *hint;           // why another unbound tensor is refused (NULL: not checked)
} loader_model;

// A static loader_model `name` over typed functions: parse(CONFIG *, json, label),
// table(MODEL *, ...), close(MODEL *), as mar_config_parse, mar_tensor_table, mar_close.
#define LOADER_MODEL(name, MODEL, CONFIG, parse_, table_, close_, ignore_, hint_)                              \
    static int name##_parse(void *c, const char *json, const char *label) {                                   \
        return parse_((CONFIG *)c, json, label);                                                              \
    }                                                                                                         \
    static int name##_table(void *m, st_bind_entry **tab, char **names, int *n) {                             \
        return table_((MODEL *)m, tab, names, n);                                                             \
    }                                                                                                         \
    static void name##_close(void *m) { close_((MODEL *)m); }                                                 \
    static const loader_model name = {sizeof(MODEL), name##_parse, name##_table, name##_close, ignore_, hint_}

// Zero the model, open path into st, parse its config into cfg, bind every tensor of the
// model's table (all missing or mis-shaped ones in one message) and refuse unexpected
// ones. The model owns the mapping; on failure it is closed (and zero).
int loader_open(const loader_model *k, void *model, st_file *st, void *cfg, const char *path);
// Write path with model's tensors (its config set, nothing bound) filled by the
// deterministic generator (st_write_generated) and config_json as its config; the model
// is closed after. *n_values (may be NULL): the values written.
int loader_write_generated(const loader_model *k, void *model, const char *config_json, uint64_t seed,
                           const char *path, size_t *n_values);

#endif

// seqcnn.h: a generic sequential CNN, used as a feature net (the embedded
// Fashion-MNIST classifier).
#ifndef DISA_SEQCNN_H
#define DISA_SEQCNN_H
#include <stddef.h>
#include <stdint.h>

#include "disa/arena.h"
#include "disa/safetensors.h"

// Sequential CNN feature net: the layer list of a "disa-classifier-1" safetensors file
// (tools/train_fmnist_classifier.py): conv2d {name, cin, cout, k, stride, pad}, relu,
// maxpool2d {k, stride[, pad]}, avgpool2d {k, stride[, pad, count_include_pad]},
// flatten, linear {name, in, out}; input x = u8 / 255 * 2 - 1 (float32 ops, as
// PyTorch); the feature vector is the output of layers[feature_layer], the logits the
// output of the last layer.

typedef enum { SEQ_CONV2D, SEQ_RELU, SEQ_MAXPOOL, SEQ_AVGPOOL, SEQ_FLATTEN, SEQ_LINEAR, SEQ_KIND_COUNT } seq_kind;
const char *seq_kind_name(seq_kind k);

typedef struct seq_layer {
    seq_kind kind;
    char name[64];            // state_dict prefix of conv2d / linear
    char wname[72], bname[72];// NAME.weight, NAME.bias
    int cin, cout, k, stride, pad, count_include_pad;  // conv / pool / linear (cin=in, cout=out)
    int C, H, W;              // output shape (H = W = 1 after flatten / linear, C = width)
    const float *w, *b;       // NAME.weight, NAME.bias
} seq_layer;

typedef struct seqcnn {
    st_file st;               // owns the mapping when opened from a file
    int in_c, in_h, in_w;
    int n_layers, feature_layer, feat_dim, n_classes;
    seq_layer *layers;        // [n_layers]
} seqcnn;

// Parse the config JSON (label names it in errors) into m->layers with shapes checked
// layer to layer. The weights are not bound yet.
int seqcnn_config_parse(seqcnn *m, const char *json, const char *label);
// Binding table of the parsed layers (NAME.weight, NAME.bias) for st_bind or a parity
// adapter; *tab is the caller's to free, its names point into m->layers.
int seqcnn_tensor_table(seqcnn *m, st_bind_entry **tab, int *count);
// Open a "disa-classifier-1" file: parse, bind every tensor (all problems listed).
int seqcnn_open(seqcnn *m, const char *path);
void seqcnn_close(seqcnn *m);
size_t seqcnn_scratch_bytes(const seqcnn *m, int N);
// feat[N, feat_dim] (may be NULL), logits[N, n_classes] (may be NULL) from images
// img[N, in_c, in_h, in_w] uint8. Scratch from `a`, released before returning.
// DISA_ENOMEM when the arena is too small.
int seqcnn_forward(const seqcnn *m, arena *a, float *feat, float *logits,
                   const uint8_t *img, int N);

#endif

// simulate.h: disa-gen --simulate, a tool for sizing runs, not a way to make images.
//
// A simulated run is a real run of the scheduler, the messages, the ledger, resume,
// progress and the summary, with the sampler of every unit replaced by a wait:
//
//   - the wait of unit u lasts count x s_per_image x (1 + spread x v), v uniform in
//     [-1, 1] from the unit's own Philox stream (the same for any world size), cut into
//     slices with the sampler's poll hook between them, as many as the family's AR steps
//     times (1 + head steps per token) (fewer than the real sampler's polls, one per
//     transformer block and head step: answers are no more prompt than in a real run);
//     time spent inside the poll hook (rank 0 answering) delays the unit as it would
//     delay real sampling. Ranks other than 0 only look for an ABORT there, so they
//     poll at most every 50 ms: a thousand oversubscribed ranks then mostly sleep.
//   - s_per_image is given in seconds, or comes from the FLOP model of the job's model
//     and settings (sampling and decoding; include/disa/flops.h) at a rate in GFLOPS.
//   - no PNGs are written (the job's png becomes false, so resume verifies none);
//     feature shards (folder.h) of the real size are written when the job has a
//     feature net, with random rows that depend only on (seed, image index), so rank
//     0's merge and metrics do the work of a real run; the numbers describe nothing.
//   - every rank opens the job's model and decoder as a real run does (the start-up
//     cost is real); of the feature net only the shape is read (the Inception's folded
//     weights are a private copy per rank that a thousand ranks could not hold here).
//
// A simulated folder can never pass for a real one: run.json holds "simulated" and the
// identity key simulated=1, so a real run refuses to resume it and a simulation refuses
// a real run's folder (record.h); summary.json names its metrics
// metrics_of_random_features.
#ifndef DISA_SIMULATE_H
#define DISA_SIMULATE_H
#include <stdint.h>

// Plain data: it travels inside a job (job.h) between ranks as bytes.
typedef struct sim_spec {
    int on;              // 0: a real run
    double s_per_image;  // > 0: seconds per image; 0: from the FLOP model at gflops
    double gflops;       // the rate of one rank running the FLOP model (s_per_image == 0)
    double spread;       // unit times uniform in (1 +- spread) x the mean, 0 <= spread < 1
} sim_spec;

// The end-to-end share of the sgemm peak a rank reaches (docs/performance.md: 82-86%
// end to end, 91-95% in sampling): "flops" without a rate uses this share of the peak
// rank 0 measures at start.
#define SIM_PEAK_SHARE 0.85

// Parse the value of --simulate: "S[:SPREAD]" (seconds per image, > 0) or
// "flops[@GFLOPS][:SPREAD]" (gflops 0: disa-gen measures the sgemm peak of a rank and
// takes SIM_PEAK_SHARE of it). DISA_EINVAL with a message naming --simulate and what is
// accepted.
int sim_parse(sim_spec *s, const char *text);
// The text form ("0.02:0.1", "flops@120:0") for run.json and logs.
const char *sim_str(const sim_spec *s, char *buf, int n);

// Seconds of unit u (unit_count images) of a job with seed `seed` whose images take
// s_image seconds on average: the spread drawn from the unit's own stream.
double sim_unit_seconds(const sim_spec *s, double s_image, uint64_t seed, int unit, int unit_count);

#endif

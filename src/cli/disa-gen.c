// disa-gen: the distributed MAR/DiSA image generator.
//
//   mpirun -np N build/bin/disa-gen jobs/NAME.json [more.json ...] [--flag value ...]
//   srun build/bin/disa-gen jobs/NAME.json          (inside a SLURM allocation)
//
// Flags (main_mar.py names override every job and variant): --output_dir --num_images
// --eval_bsz --seed --num_iter --cfg --cfg_schedule --temperature --diff_sampler --dpm_order
// --diff_upper_steps --diff_lower_steps --diff_annealing_strategy --diff_budget
// --diff_adaptive_signal --precision --model --vae
// (xAR models: --cfg --cfg_schedule --flow_upper_steps --flow_lower_steps --num_steps
// --flow_sampler; FlowAR models: FlowAR_DiSA eval.py's --flow_upper_steps --flow_lower_steps
// --cfg --guidance);
// and --restart, --require_uniform_hardware, --threads N, --progress SECONDS, --log_level
// LEVEL, --quiet, and --simulate S[:SPREAD] | flops[@GFLOPS][:SPREAD]: a tool for sizing
// runs, the scheduler with every unit's sampling replaced by a wait and no images
// (include/disa/simulate.h).
// Exit status: 0 done, stopped resumably (SIGTERM/SIGUSR1) or --help; 2 bad arguments,
// job files or model files, or hardware --require_uniform_hardware refuses (nothing
// written); 1 failures while running.
#include "disa/bench.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/clock.h"
#include "disa/cpu.h"
#include "disa/estimate.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/generator.h"
#include "disa/job.h"
#include "disa/log.h"
#include "disa/world.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_signal(int sig) { generator_request_stop(sig); }

static void usage(FILE *f) {
    fprintf(f,
            "usage: disa-gen JOB.json [JOB.json ...] [--restart] [--require_uniform_hardware] [--threads N]\n"
            "       [--progress bar|lines|S] [--log_level L] [--quiet]\n"
            "       [--output_dir D] [--num_images N] [--eval_bsz B] [--seed S] [--num_iter K] [--cfg X]\n"
            "       [--cfg_schedule linear|constant] [--temperature T]\n"
            "       [--diff_sampler default|DiSA|DDIM|DPM_Solver|DPM_Solver++] [--dpm_order 1|2|3]\n"
            "       [--diff_upper_steps U] [--diff_lower_steps L]\n"
            "       [--diff_annealing_strategy linear|cosine|two-stage|constant|adaptive] [--diff_budget B]\n"
            "       [--diff_adaptive_signal cfg|var|eps]\n"
            "       [--precision fp32|bf16|auto] [--model FILE] [--vae FILE] [--variant NAME] [--unit_timeout auto|off|S]\n"
            "       xAR models: [--cfg X] [--cfg_schedule linear|constant] [--flow_upper_steps U] [--flow_lower_steps L]\n"
            "       [--num_steps N] [--flow_sampler euler_maruyama|euler]\n"
            "       FlowAR models: [--flow_upper_steps U] [--flow_lower_steps L] [--cfg X] [--guidance G]\n"
            "       [--simulate SECONDS_PER_IMAGE[:SPREAD] | --simulate flops[@GFLOPS][:SPREAD]]  (no images: a tool)\n"
            "       disa-gen JOB.json... --estimate [--cores N,N...] [--threads T]   (the cost, before running)\n");
}

// --progress bar|lines|S and --unit_timeout auto|off|S into o; 2 after a message.
static int parse_mode_flag(generator_opts *o, const char *flag, const char *val) {
    char *end;
    if (strcmp(flag, "progress") == 0) {
        // "bar": a live bar even when stderr is not a terminal (mpirun forwards it
        // through a pipe); "lines": plain lines; a number: seconds between lines.
        double p = strtod(val, &end);
        if (strcmp(val, "bar") == 0) {
            o->bar = 1;
        } else if (strcmp(val, "lines") == 0) {
            o->bar = 0;
        } else if (*end || end == val || !(p >= 0 && p <= 86400)) {
            fprintf(stderr, "disa-gen: --progress must be bar, lines or seconds in 0..86400, got '%s'\n", val);
            return 2;
        } else {
            o->progress_every = p;
            o->bar = 0;
        }
        return 0;
    }
    // The watchdog: "auto" (10x the slowest unit, at least 600 s), "off", or seconds.
    double t = strtod(val, &end);
    if (strcmp(val, "auto") == 0) {
        o->unit_timeout = 0;
    } else if (strcmp(val, "off") == 0) {
        o->unit_timeout = -1;
    } else if (*end || end == val || !(t >= 1 && t <= 1e7)) {
        fprintf(stderr, "disa-gen: --unit_timeout must be auto, off or seconds in 1..1e7, got '%s'\n", val);
        return 2;
    } else {
        o->unit_timeout = t;
    }
    return 0;
}

// parse()'s result for --estimate (rank 0 calibrates and prints the cost, nothing is
// written); for --help it is FLAG_HELP (the usage is printed, every rank exits 0).
enum { PARSE_ESTIMATE = -2 };

// --estimate's core counts: this machine's first, then --cores (default: a 64-core node).
static int g_cores[17], g_n_cores;

// --cores N,N,...: up to 16 core counts, each 1..10,000,000; 2 after a message.
static int parse_cores(const char *val) {
    g_n_cores = 1;
    for (const char *c = val;; c++) {
        size_t n = strcspn(c, ",");
        char one[32];
        long long k;
        if (n == 0 || n >= sizeof one || g_n_cores == 17) {
            fprintf(stderr, "disa-gen: --cores '%s': expected up to 16 comma-separated core counts\n", val);
            return 2;
        }
        memcpy(one, c, n);
        one[n] = 0;
        if (flag_int("cores", one, 1, 10000000, &k) != 0) {
            fprintf(stderr, "disa-gen: %s\n", disa_errmsg());
            return 2;
        }
        g_cores[g_n_cores++] = (int)k;
        c += n;
        if (!*c) return 0;
    }
}

// The flags that take a value, besides the job overrides.
static int is_valued_flag(const char *flag) {
    static const char *const names[] = {"threads", "progress", "unit_timeout", "variant", "log_level", "cores",
                                        "simulate", NULL};
    return flag_in(flag, names) || job_is_override_flag(flag);
}

// --simulate: every job becomes a simulation that writes no PNGs. "flops" without a
// rate takes SIM_PEAK_SHARE of the sgemm peak of one rank (its --threads, else 1)
// measured here, so every rank and run.json get the same number.
static int simulate_jobs(job_list *jobs, sim_spec *sim, int threads) {
    if (sim->s_per_image == 0 && sim->gflops == 0) {
        blas_set_threads(threads > 0 ? threads : 1);
        double all[7], peak = bench_sgemm_peak(1024, 7, all);
        if (!(peak > 0)) {
            fprintf(stderr, "disa-gen: --simulate flops: out of memory measuring the sgemm peak; give the rate as "
                    "flops@GFLOPS\n");
            return 1;
        }
        sim->gflops = SIM_PEAK_SHARE * peak;
        LOG(LOG_INFO, "--simulate flops: sgemm peak %.1f GFLOPS at %d threads; a rank runs the FLOP model at %.0f%% "
            "of it, %.1f GFLOPS", peak, blas_get_threads(), 100 * SIM_PEAK_SHARE, sim->gflops);
    }
    for (int j = 0; j < jobs->n; j++) {
        jobs->jobs[j].sim = *sim;
        jobs->jobs[j].png = 0;
    }
    return 0;
}

// Parse argv into jobs. Returns 0, FLAG_HELP, PARSE_ESTIMATE, 2 after printing one
// message, or 1 when --simulate flops cannot measure the sgemm peak.
static int parse(int argc, char **argv, job_list *jobs, generator_opts *o) {
    const char *files[64], *variant = NULL;
    sim_spec sim = {0};
    int n_files = 0, n_ov = 0, want_estimate = 0, uniform = 0;
    job_override ov[64];
    static char flags[64][64];  // the override names job_load reads
    for (int i = 1; i < argc; i++) {
        const char *val;
        char *flag = flags[n_ov < 64 ? n_ov : 63];
        if (strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return FLAG_HELP;
        }
        if (!flag_split(argv[i], 1, flag, 64, &val)) {
            if (n_files == 64) {
                fprintf(stderr, "disa-gen: at most 64 job files\n");
                return 2;
            }
            files[n_files++] = argv[i];
            continue;
        }
        if (strcmp(flag, "restart") == 0 || strcmp(flag, "quiet") == 0 || strcmp(flag, "estimate") == 0 ||
            strcmp(flag, "require_uniform_hardware") == 0) {
            if (val) {
                fprintf(stderr, "disa-gen: --%s takes no value\n", flag);
                return 2;
            }
            if (strcmp(flag, "restart") == 0) o->restart = 1;
            else if (strcmp(flag, "quiet") == 0) o->quiet = 1;
            else if (strcmp(flag, "estimate") == 0) want_estimate = 1;
            else uniform = 1;  // every job's require_uniform_hardware, once they are loaded
            continue;
        }
        if (flag_is_help(argv[i])) {
            usage(stdout);
            return FLAG_HELP;
        }
        if (!is_valued_flag(flag)) {
            fprintf(stderr, "disa-gen: unknown flag '--%s' (disa-gen --help lists them)\n", flag);
            return 2;
        }
        log_level lv;
        if (flag_value(argc, argv, &i, flag, &val) != 0) {
            fprintf(stderr, "disa-gen: %s\n", disa_errmsg());
            return 2;
        }
        if (strcmp(flag, "threads") == 0) {
            if (flag_int32(flag, val, 1, 1024, &o->threads) != 0) {
                fprintf(stderr, "disa-gen: %s\n", disa_errmsg());
                return 2;
            }
        } else if (strcmp(flag, "progress") == 0 || strcmp(flag, "unit_timeout") == 0) {
            if (parse_mode_flag(o, flag, val) != 0) return 2;
        } else if (strcmp(flag, "cores") == 0) {
            if (parse_cores(val) != 0) return 2;
        } else if (strcmp(flag, "variant") == 0) {
            variant = val;
        } else if (strcmp(flag, "simulate") == 0) {
            if (sim_parse(&sim, val) != 0) {
                fprintf(stderr, "disa-gen: %s\n", disa_errmsg());
                return 2;
            }
        } else if (strcmp(flag, "log_level") == 0) {
            if (log_level_parse(val, &lv) != 0) {
                fprintf(stderr, "disa-gen: --log_level: %s\n", disa_errmsg());
                return 2;
            }
            log_set_level(lv);
        } else if (job_is_override_flag(flag)) {
            if (n_ov == 64) {
                fprintf(stderr, "disa-gen: too many flags\n");
                return 2;
            }
            ov[n_ov].flag = flag;
            ov[n_ov++].value = val;
        }
    }
    if (want_estimate && sim.on) {
        fprintf(stderr, "disa-gen: --estimate and --simulate exclude each other\n");
        return 2;
    }
    if (n_files == 0) {
        fprintf(stderr, "disa-gen: no job file given\n");
        usage(stderr);
        return 2;
    }
    for (int f = 0; f < n_files; f++)
        if (job_load(jobs, files[f], ov, n_ov) != 0) {
            fprintf(stderr, "disa-gen: %s\n", disa_errmsg());
            return 2;
        }
    if ((variant && job_list_keep_variant(jobs, variant) != 0) || (!want_estimate && job_list_check_outputs(jobs) != 0)) {
        fprintf(stderr, "disa-gen: %s\n", disa_errmsg());
        return 2;
    }
    for (int j = 0; uniform && j < jobs->n; j++) jobs->jobs[j].require_uniform_hardware = 1;
    if (want_estimate) return PARSE_ESTIMATE;
    return sim.on ? simulate_jobs(jobs, &sim, o->threads) : 0;
}

// --estimate on rank 0: every job's cost from the FLOP model and a calibration of its
// first unit on this machine (estimate.h), at the job's precision and, where this CPU
// runs bf16, at the other one too. Writes nothing.
// The calibration runs in one process with a rank's threads; "here" is all ranks' cores.
static int run_estimate(job_list *jobs, const generator_opts *o, int ranks) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = o->threads > 0 ? o->threads : online > ranks ? (int)online / ranks : 1;
    blas_set_threads(threads);
    g_cores[0] = threads * ranks;
    if (g_n_cores == 0) g_n_cores = 1, g_cores[g_n_cores++] = 64;
    // auto: what this machine runs (the run itself picks bf16 only if every rank can), and
    // refused where the run would refuse it.
    for (int j = 0; j < jobs->n; j++) {
        job *jb = &jobs->jobs[j];
        const int asked_auto = jb->precision == PRECISION_AUTO;
        jb->precision = family_precision_resolve(job_family(jb), jb->precision, NULL, 0);
        if (asked_auto && family_precision_check(job_family(jb), &jb->params, jb->precision, 1) != 0) {
            fprintf(stderr, "disa-gen: %s: %s\n", jb->name, disa_errmsg());
            return 2;
        }
    }
    char blas[512];
    printf("estimate on this machine: %s\n", cpu_blas_describe(blas, sizeof blas));
    unit_runner ur;
    double t0 = clock_now();
    int rc = unit_runner_init(&ur, jobs, 0);
    double t_load = clock_now() - t0, total[2] = {0, 0};
    if (!rc) printf("loading the models: %.1f s (once per run and rank)\n\n", t_load);
    int bf16 = bf16_available() == 0;
    disa_err_clear();
    for (int j = 0; !rc && j < jobs->n; j++) {
        const job *jb = &jobs->jobs[j];
        for (int k = 0; k < 2 && !rc; k++) {
            int prec = k == 0 ? jb->precision : (jb->precision == PRECISION_BF16 ? PRECISION_FP32 : PRECISION_BF16);
            // The other precision only where it runs here and runs these settings.
            if (k == 1 && prec == PRECISION_BF16 &&
                (!bf16 || family_precision_check(job_family(jb), &jb->params, prec, 0) != 0)) {
                disa_err_clear();
                break;
            }
            estimate e;
            if ((rc = estimate_job(&e, &ur, j, prec, 10.0)) != 0) break;
            estimate_print(&e, jb, jb->num_images, g_cores, g_n_cores);
            fflush(stdout);
            total[k] += e.s_image * e.threads * jb->num_images;
        }
        printf("\n");
    }
    if (!rc && jobs->n > 1)
        printf("all %d jobs: %.2f core-hours at their precision (%.1f s wall on the %d cores here)\n", jobs->n,
               total[0] / 3600, total[0] / g_cores[0] + t_load, g_cores[0]);
    unit_runner_free(&ur);
    if (rc) fprintf(stderr, "disa-gen: --estimate: %s\n", disa_errmsg());
    return rc ? disa_exit_status(rc) : 0;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);  // before MPI starts: it may re-execute the program
    int rank, size;
    world_init(&argc, &argv, &rank, &size);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    // srun without an MPI plugin starts N independent copies that each see a world of 1
    // and would all write the same images.
    const char *steps = getenv("SLURM_STEP_NUM_TASKS");
    if (size == 1 && steps && atoi(steps) > 1) {
        fprintf(stderr, "disa-gen: SLURM_STEP_NUM_TASKS=%s but the MPI world has 1 rank: srun started independent "
                "copies. Launch with 'srun --mpi=pmix' (see 'srun --mpi=list') or with mpirun inside the "
                "allocation\n", steps);
        world_finalize();
        return 2;
    }

    generator_opts o = {.progress_every = 30.0, .bar = isatty(STDERR_FILENO)};
    job_list jobs = {0};
    int status = 0;
    if (rank == 0) status = parse(argc, argv, &jobs, &o);
    // Rank 0 validated everything; the others learn the verdict, then the jobs.
    status = generator_share(&jobs, &o, status);
    // --estimate runs on rank 0 only and never goes on to the run.
    if (status == PARSE_ESTIMATE) {
        status = rank == 0 ? run_estimate(&jobs, &o, size) : 0;
        job_list_free(&jobs);
        world_finalize();
        return status;
    }
    if (status) {
        job_list_free(&jobs);
        world_finalize();
        return status < 0 ? 0 : status;
    }
    int rc = generator_run(&jobs, &o);
    job_list_free(&jobs);
    world_finalize();
    if (rc == 0 || rc == DISA_ECANCELED) return 0;
    return disa_exit_status(rc);
}

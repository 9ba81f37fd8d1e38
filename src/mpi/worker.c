// worker.c: the loop of every rank but 0 (roles.h; messages in msg.h).
//
//   REQUEST
//   loop: wait for the REPLY (an ABORT may overtake it: note it, then take the REPLY)
//         STOP, ABORT or a signal -> leave the loop
//         REQUEST again (prefetch: the next unit waits when this one is done)
//         run the unit; ABORT or a signal inside it -> leave the loop, the unit dropped
//         DONE with the unit's report
//   BYE, then receive whatever comes until FIN
//
// Why every message is matched at exit. The worker has at most one REQUEST outstanding,
// and rank 0 answers each with exactly one REPLY: the loop leaves either right after
// taking a REPLY without a new REQUEST, or with the prefetch REQUEST outstanding, whose
// REPLY is then taken by the drain. rank 0 sends ABORT at most once per worker and FIN
// only in answer to BYE, after everything else it sends that worker, and MPI keeps the
// order of messages between two ranks: the drain until FIN consumes every REPLY and
// ABORT still in flight. rank 0 finishes only when every worker's BYE arrived, so no
// DONE is left unread either, and MPI_Finalize never sees an unmatched message. A unit
// left without DONE (dropped, or the worker died) is not in the ledger: rank 0 requeues
// it at BYE, or the next run computes it (the argument in scheduler.c).
#include "lazy.h"
#include "roles.h"
#include "msg.h"

#include "disa/clock.h"
#include "disa/err.h"
#include "disa/log.h"

#include <mpi.h>

static void send_empty(msg_tag tag) {
    empty_msg m = {0};
    MPI_Send(&m, sizeof m, MPI_BYTE, 0, tag, MPI_COMM_WORLD);
}

static void recv_empty(msg_tag tag) {
    empty_msg m;
    MPI_Recv(&m, sizeof m, MPI_BYTE, 0, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

// The sampler's poll hook: an ABORT from rank 0 or a signal stops the unit.
static int worker_poll(void *ctx) {
    int *aborted = ctx, flag;
    if (!*aborted) {
        MPI_Iprobe(0, TAG_ABORT, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
        if (flag) {
            recv_empty(TAG_ABORT);
            *aborted = 1;
        }
    }
    return *aborted || generator_stop_requested;
}

// The REPLY to the outstanding REQUEST, or an ABORT that overtook it (then the REPLY).
static reply_msg wait_reply(int *aborted) {
    MPI_Status stt;
    lazy_probe(0, MPI_ANY_TAG, &stt);
    if (stt.MPI_TAG == TAG_ABORT) {
        recv_empty(TAG_ABORT);
        *aborted = 1;
        lazy_probe(0, TAG_REPLY, &stt);
    }
    reply_msg m;
    MPI_Recv(&m, sizeof m, MPI_BYTE, 0, TAG_REPLY, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return m;
}

int worker_run(unit_runner *ur) {
    int aborted = 0;
    double idle = 0;  // seconds spent waiting for units, charged to the next report
    send_empty(TAG_REQUEST);
    for (int first = 1;; first = 0) {
        double t0 = clock_now();
        reply_msg m = wait_reply(&aborted);
        if (!first) idle += clock_now() - t0;
        if (m.kind == REPLY_STOP || aborted || generator_stop_requested) break;
        send_empty(TAG_REQUEST);  // prefetch the next unit
        unit_report r;
        int rc = unit_run(ur, m.job, m.unit, worker_poll, &aborted, &r);
        if (rc == DISA_ECANCELED) break;  // the prefetch REPLY is taken by the drain
        if (rc) {
            LOG(LOG_ERROR, "unit %d of %s: %s", m.unit, ur->jobs->jobs[m.job].name, disa_errmsg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        r.t_idle = idle;
        idle = 0;
        MPI_Send(&r, sizeof r, MPI_BYTE, 0, TAG_DONE, MPI_COMM_WORLD);
    }
    send_empty(TAG_BYE);
    for (;;) {  // drain: a late REPLY or ABORT, then FIN
        MPI_Status stt;
        lazy_probe(0, MPI_ANY_TAG, &stt);
        char buf[sizeof(reply_msg) > sizeof(empty_msg) ? sizeof(reply_msg) : sizeof(empty_msg)];
        MPI_Recv(buf, sizeof buf, MPI_BYTE, 0, stt.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (stt.MPI_TAG == TAG_FIN) return 0;
    }
}

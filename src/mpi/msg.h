// msg.h: the messages between rank 0 (the scheduler, scheduler.c) and the workers
// (worker.c) of disa-gen; private to src/mpi.
//
// Every message is a fixed-size struct sent as MPI_BYTE on MPI_COMM_WORLD:
//
//   worker -> 0   TAG_REQUEST  empty_msg    "give me a unit"        (at most one outstanding)
//   0 -> worker   TAG_REPLY    reply_msg    ASSIGN(job, unit) or STOP (answers one REQUEST)
//   worker -> 0   TAG_DONE     unit_report  a finished unit, its PNGs and shard on disk
//   worker -> 0   TAG_BYE      empty_msg    "I will send nothing more"
//   0 -> worker   TAG_ABORT    empty_msg    "drop the unit in flight" (graceful stop)
//   0 -> worker   TAG_FIN      empty_msg    last message to a worker, answers BYE
#ifndef DISA_MPI_MSG_H
#define DISA_MPI_MSG_H
#include <signal.h>
#include <stdint.h>

typedef enum { TAG_REQUEST = 101, TAG_REPLY, TAG_DONE, TAG_BYE, TAG_ABORT, TAG_FIN } msg_tag;
typedef enum { REPLY_ASSIGN = 1, REPLY_STOP = 2 } reply_kind;

typedef struct empty_msg {
    int32_t unused;
} empty_msg;

typedef struct reply_msg {
    int32_t kind, job, unit, pad;  // kind: reply_kind; job, unit: the assigned unit
} reply_msg;

// Set by generator_request_stop (a signal handler): stop after the current step, resumably.
extern volatile sig_atomic_t generator_stop_requested;

#endif

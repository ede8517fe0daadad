/* The channel functions of the C API: channels of void * and int64_t, send, receive,
 * balance, close, clone and free, their refusals, a tasklet blocked inside C code on a
 * channel that is killed (the blocking call returns MT_EKILLED; the C code cleans up), and a
 * buffered channel (mt_channel_new_buffered, mt_channel_length). */
#include <stdint.h>
#include <string.h>

#include "check.h"

static void send_three(void *arg) {
    mt_channel *ch = arg;
    for (int64_t i = 1; i <= 3; i++) {
        CHECK_CODE(mt_channel_send_int64(ch, i * 10), MT_OK);
    }
}

static void int64_send_and_receive(void) {
    mt_channel *ch = NULL;
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &ch), MT_OK);
    CHECK_CODE(mt_spawn(send_three, ch, NULL), MT_OK);
    int64_t sum = 0;
    for (int i = 0; i < 3; i++) {
        int64_t v = 0;
        CHECK_CODE(mt_channel_receive_int64(ch, &v), MT_OK);
        sum += v;
    }
    CHECK(sum == 60);
    CHECK_CODE(mt_run(), MT_OK); /* the sender, runnable after its last send, ends */
    CHECK_CODE(mt_channel_free(ch), MT_OK);
}

static int payload = 7;

static void send_pointer(void *arg) {
    CHECK_CODE(mt_channel_send_ptr(arg, &payload), MT_OK);
}

static void pointer_send_and_receive(void) {
    mt_channel *ch = NULL;
    CHECK_CODE(mt_channel_new(MT_CHANNEL_PTR, &ch), MT_OK);
    CHECK_CODE(mt_spawn(send_pointer, ch, NULL), MT_OK);
    void *got = NULL;
    CHECK_CODE(mt_channel_receive_ptr(ch, &got), MT_OK);
    CHECK(got == &payload);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK_CODE(mt_channel_free(ch), MT_OK);
}

static void receive_one(void *arg) {
    int64_t v = 0;
    CHECK_CODE(mt_channel_receive_int64(arg, &v), MT_OK);
    CHECK(v == 5);
}

static void send_one(void *arg) {
    CHECK_CODE(mt_channel_send_int64(arg, 5), MT_OK);
}

static void balance_counts_waiters(void) {
    mt_channel *ch = NULL;
    int64_t balance = 99;
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &ch), MT_OK);
    CHECK_CODE(mt_channel_balance(ch, &balance), MT_OK);
    CHECK(balance == 0);
    CHECK_CODE(mt_spawn(receive_one, ch, NULL), MT_OK);
    CHECK_CODE(mt_spawn(receive_one, ch, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* both block */
    CHECK_CODE(mt_channel_balance(ch, &balance), MT_OK);
    CHECK(balance == -2);
    CHECK_CODE(mt_channel_send_int64(ch, 5), MT_OK);
    CHECK_CODE(mt_channel_send_int64(ch, 5), MT_OK);
    CHECK_CODE(mt_channel_balance(ch, &balance), MT_OK);
    CHECK(balance == 0);
    CHECK_CODE(mt_spawn(send_one, ch, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* the sender blocks */
    CHECK_CODE(mt_channel_balance(ch, &balance), MT_OK);
    CHECK(balance == 1);
    int64_t v = 0;
    CHECK_CODE(mt_channel_receive_int64(ch, &v), MT_OK);
    CHECK(v == 5);
    CHECK_CODE(mt_run(), MT_OK); /* the sender, runnable again, ends */
    CHECK_CODE(mt_channel_free(ch), MT_OK);
}

static void close_refuses_blocking_operations(void) {
    mt_channel *ch = NULL, *other = NULL;
    int closing = -1;
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &ch), MT_OK);
    CHECK_CODE(mt_channel_clone(ch, &other), MT_OK);
    CHECK_CODE(mt_channel_closing(other, &closing), MT_OK);
    CHECK(closing == 0);
    CHECK_CODE(mt_channel_close(ch), MT_OK);
    CHECK_CODE(mt_channel_closing(other, &closing), MT_OK);
    CHECK(closing == 1); /* the clone is a handle to the same channel */
    int64_t v = 0;
    CHECK_CODE(mt_channel_send_int64(other, 1), MT_ECLOSED);
    CHECK_CODE(mt_channel_receive_int64(other, &v), MT_ECLOSED);
    CHECK_CODE(mt_channel_free(ch), MT_OK);
    CHECK_CODE(mt_channel_free(other), MT_OK); /* the channel lives until its last handle */
}

static void nothing(void *arg) {
    (void)arg;
}

static void refusals(void) {
    mt_channel *ch = NULL, *ptrs = NULL;
    int64_t v = 0;
    void *p = NULL;
    CHECK_CODE(mt_channel_new(3, &ch), MT_EINVAL);
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, NULL), MT_ENULL);
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &ch), MT_OK);
    CHECK_CODE(mt_channel_new(MT_CHANNEL_PTR, &ptrs), MT_OK);
    /* The wrong value type: refused before anything happens. */
    CHECK_CODE(mt_channel_send_ptr(ch, &v), MT_EWRONGTYPE);
    CHECK_CODE(mt_channel_receive_ptr(ch, &p), MT_EWRONGTYPE);
    CHECK_CODE(mt_channel_send_int64(ptrs, 1), MT_EWRONGTYPE);
    CHECK_CODE(mt_channel_receive_int64(ptrs, &v), MT_EWRONGTYPE);
    /* Main alone: nobody could ever be the partner. */
    CHECK_CODE(mt_channel_send_int64(ch, 1), MT_EDEADLOCK);
    CHECK_CODE(mt_channel_receive_int64(ch, &v), MT_EDEADLOCK);
    /* Main blocks, and the last other tasklet ends without being its partner. */
    CHECK_CODE(mt_spawn(nothing, NULL, NULL), MT_OK);
    CHECK_CODE(mt_channel_send_int64(ch, 1), MT_EMAINSENDING);
    CHECK_CODE(mt_spawn(nothing, NULL, NULL), MT_OK);
    CHECK_CODE(mt_channel_receive_int64(ch, &v), MT_EMAINRECEIVING);
    int64_t balance = 9;
    CHECK_CODE(mt_channel_balance(ch, &balance), MT_OK);
    CHECK(balance == 0); /* a refused operation leaves no trace */
    /* Null handles and out-pointers. */
    CHECK_CODE(mt_channel_send_int64(NULL, 1), MT_ENULL);
    CHECK_CODE(mt_channel_send_ptr(NULL, NULL), MT_ENULL);
    CHECK_CODE(mt_channel_receive_int64(ch, NULL), MT_ENULL);
    CHECK_CODE(mt_channel_receive_ptr(ptrs, NULL), MT_ENULL);
    CHECK_CODE(mt_channel_balance(NULL, &balance), MT_ENULL);
    CHECK_CODE(mt_channel_balance(ch, NULL), MT_ENULL);
    CHECK_CODE(mt_channel_close(NULL), MT_ENULL);
    CHECK_CODE(mt_channel_closing(ch, NULL), MT_ENULL);
    CHECK_CODE(mt_channel_clone(NULL, &ch), MT_ENULL);
    CHECK_CODE(mt_channel_free(NULL), MT_ENULL);
    CHECK_CODE(mt_channel_free(ch), MT_OK);
    CHECK_CODE(mt_channel_free(ptrs), MT_OK);
}

/* A tasklet blocked inside C code (in a receive) is killed: the receive returns MT_EKILLED,
 * the C code runs its cleanup and returns; a second receive after the kill does not block. */
struct blocked_worker {
    mt_channel *ch;
    int first, second;
    int cleaned_up;
    int64_t received;
};

static void blocked_in_receive(void *arg) {
    struct blocked_worker *w = arg;
    char *buffer = malloc(64); /* released by the cleanup below, however the loop ends */
    for (;;) {
        int64_t v;
        int rc = mt_channel_receive_int64(w->ch, &v);
        if (rc != MT_OK) {
            w->first = rc;
            break;
        }
        w->received += v;
    }
    int64_t v;
    w->second = mt_channel_receive_int64(w->ch, &v);
    free(buffer);
    w->cleaned_up = 1;
}

static void kill_a_tasklet_blocked_in_c(void) {
    struct blocked_worker w = {NULL, -1, -1, 0, 0};
    mt_tasklet *t = NULL;
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &w.ch), MT_OK);
    CHECK_CODE(mt_spawn(blocked_in_receive, &w, &t), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* it blocks in the receive */
    CHECK_CODE(mt_channel_send_int64(w.ch, 4), MT_OK);
    int64_t balance = 0;
    CHECK_CODE(mt_channel_balance(w.ch, &balance), MT_OK);
    CHECK(balance == -1); /* blocked again, in C code, inside the loop */
    CHECK_CODE(mt_kill(t), MT_OK);
    CHECK(w.first == MT_EKILLED);
    CHECK(w.second == MT_EKILLED); /* sticky: the second receive did not block */
    CHECK(w.cleaned_up == 1 && w.received == 4);
    CHECK_CODE(mt_channel_balance(w.ch, &balance), MT_OK);
    CHECK(balance == 0); /* it left the channel's queue */
    int alive = 1;
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK);
    CHECK(alive == 0);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
    CHECK_CODE(mt_channel_free(w.ch), MT_OK);
}

/* A buffered channel: sends go on while there is room, in order; a full buffer blocks the
 * sender until a receive frees a place, and that sender's value follows the buffered ones. */
static void send_one_two_three(void *arg) {
    for (int64_t i = 1; i <= 3; i++) {
        CHECK_CODE(mt_channel_send_int64(arg, i), MT_OK);
    }
}

static void buffered_channel(void) {
    mt_channel *ch = NULL;
    mt_tasklet *t = NULL;
    size_t len = 9;
    int64_t balance = 9, v = 0;
    CHECK_CODE(mt_channel_new_buffered(3, 2, &ch), MT_EINVAL);
    CHECK_CODE(mt_channel_new_buffered(MT_CHANNEL_INT64, 2, NULL), MT_ENULL);
    CHECK_CODE(mt_channel_new_buffered(MT_CHANNEL_INT64, SIZE_MAX, &ch), MT_EINVAL);
    CHECK_CODE(mt_channel_new_buffered(MT_CHANNEL_INT64, 2, &ch), MT_OK);
    CHECK_CODE(mt_spawn(send_one_two_three, ch, &t), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* 1 and 2 are buffered; the send of 3 blocks */
    CHECK_CODE(mt_channel_length(ch, &len), MT_OK);
    CHECK_CODE(mt_channel_balance(ch, &balance), MT_OK);
    CHECK(len == 2 && balance == 1);
    for (int64_t want = 1; want <= 3; want++) {
        CHECK_CODE(mt_channel_receive_int64(ch, &v), MT_OK);
        CHECK(v == want);
    }
    CHECK_CODE(mt_run(), MT_OK); /* the sender ends */
    int alive = 1;
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK);
    CHECK(alive == 0);
    /* Closing: the buffer drains, then receives fail; a send fails even with room. */
    CHECK_CODE(mt_channel_send_int64(ch, 4), MT_OK);
    CHECK_CODE(mt_channel_close(ch), MT_OK);
    CHECK_CODE(mt_channel_send_int64(ch, 5), MT_ECLOSED);
    CHECK_CODE(mt_channel_receive_int64(ch, &v), MT_OK);
    CHECK(v == 4);
    CHECK_CODE(mt_channel_receive_int64(ch, &v), MT_ECLOSED);
    CHECK_CODE(mt_channel_length(NULL, &len), MT_ENULL);
    CHECK_CODE(mt_channel_length(ch, NULL), MT_ENULL);
    /* A rendezvous channel buffers nothing. */
    mt_channel *rendezvous = NULL;
    CHECK_CODE(mt_channel_new(MT_CHANNEL_PTR, &rendezvous), MT_OK);
    CHECK_CODE(mt_channel_length(rendezvous, &len), MT_OK);
    CHECK(len == 0);
    CHECK_CODE(mt_channel_free(rendezvous), MT_OK);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
    CHECK_CODE(mt_channel_free(ch), MT_OK);
}

int main(void) {
    RUN(int64_send_and_receive);
    RUN(pointer_send_and_receive);
    RUN(balance_counts_waiters);
    RUN(close_refuses_blocking_operations);
    RUN(refusals);
    RUN(kill_a_tasklet_blocked_in_c);
    RUN(buffered_channel);
    return finish();
}

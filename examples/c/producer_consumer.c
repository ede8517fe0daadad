/* examples/c/producer_consumer.c: a small C program embedding microthread. A producer
 * tasklet sends work items on one channel, three consumer tasklets take them and send their
 * results on another, and main collects the results, then closes the work channel; the
 * consumers see MT_ECLOSED and return. Built and run by ci/c-tests.sh; asserts its outcome.
 *
 *   cargo rustc --release --lib --features capi --crate-type staticlib
 *   cc -Iinclude examples/c/producer_consumer.c target/release/libmicrothread.a \
 *      -lpthread -ldl -lm -o producer_consumer
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>

#include "microthread.h"

#define ITEMS 30
#define CONSUMERS 3

struct pipes {
    mt_channel *work;    /* int64_t: numbers to square */
    mt_channel *results; /* int64_t: their squares */
};

static void producer(void *arg) {
    struct pipes *p = arg;
    for (int64_t i = 1; i <= ITEMS; i++) {
        int rc = mt_channel_send_int64(p->work, i);
        if (rc != MT_OK) { /* killed, or the channel closed: stop */
            fprintf(stderr, "producer: %s\n", mt_strerror(rc));
            return;
        }
    }
}

static void consumer(void *arg) {
    struct pipes *p = arg;
    for (;;) {
        int64_t n;
        int rc = mt_channel_receive_int64(p->work, &n);
        if (rc == MT_ECLOSED || rc == MT_EKILLED) {
            return; /* no more work: return, the tasklet ends */
        }
        assert(rc == MT_OK);
        rc = mt_channel_send_int64(p->results, n * n);
        if (rc != MT_OK) {
            return;
        }
    }
}

int main(void) {
    struct pipes p;
    int rc = mt_channel_new(MT_CHANNEL_INT64, &p.work);
    assert(rc == MT_OK);
    rc = mt_channel_new(MT_CHANNEL_INT64, &p.results);
    assert(rc == MT_OK);

    mt_tasklet *consumers[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        rc = mt_spawn(consumer, &p, &consumers[i]);
        assert(rc == MT_OK);
    }
    rc = mt_spawn(producer, &p, NULL);
    assert(rc == MT_OK);

    /* Main receives: while it waits, the producer and the consumers run. */
    int64_t sum = 0;
    for (int i = 0; i < ITEMS; i++) {
        int64_t square;
        rc = mt_channel_receive_int64(p.results, &square);
        assert(rc == MT_OK);
        sum += square;
    }

    /* All work is done; the consumers wait for more. Closing the channel does not wake them
     * (as in Stackless), so kill them: each one's pending receive returns MT_EKILLED. */
    mt_channel_close(p.work);
    for (int i = 0; i < CONSUMERS; i++) {
        rc = mt_kill(consumers[i]);
        assert(rc == MT_OK);
        int alive;
        mt_tasklet_alive(consumers[i], &alive);
        assert(!alive);
        mt_tasklet_free(consumers[i]);
    }
    mt_channel_free(p.work);
    mt_channel_free(p.results);

    int64_t want = (int64_t)ITEMS * (ITEMS + 1) * (2 * ITEMS + 1) / 6;
    printf("producer_consumer: sum of squares 1..%d = %lld\n", ITEMS, (long long)sum);
    assert(sum == want);
    return 0;
}

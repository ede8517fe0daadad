/* Threads of the C API: C threads (pthreads) using the runtime, each with its own scheduler:
 * one that only sends (mt_init_thread), one that runs tasklets of its own, a tasklet handle
 * refused on another thread, and a thread whose end kills its tasklet blocked in C code. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

struct handoff {
    mt_channel *ch;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
};

static void announce(struct handoff *h) {
    pthread_mutex_lock(&h->lock);
    h->ready = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void await_ready(struct handoff *h) {
    pthread_mutex_lock(&h->lock);
    while (!h->ready) {
        pthread_cond_wait(&h->cond, &h->lock);
    }
    pthread_mutex_unlock(&h->lock);
}

static void *sending_thread(void *arg) {
    struct handoff *h = arg;
    CHECK_CODE(mt_init_thread(), MT_OK);
    announce(h); /* counted awake before main receives: no false deadlock */
    for (int64_t i = 1; i <= 100; i++) {
        CHECK_CODE(mt_channel_send_int64(h->ch, i), MT_OK);
    }
    return NULL;
}

static void a_c_thread_sends_to_main(void) {
    struct handoff h = {NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    CHECK_CODE(mt_init_thread(), MT_OK);
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &h.ch), MT_OK);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, sending_thread, &h) == 0);
    await_ready(&h);
    int64_t sum = 0;
    for (int i = 0; i < 100; i++) {
        int64_t v = 0;
        CHECK_CODE(mt_channel_receive_int64(h.ch, &v), MT_OK);
        sum += v;
    }
    CHECK(sum == 5050);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_CODE(mt_channel_free(h.ch), MT_OK);
}

struct own_tasklets {
    uint64_t main_id, tasklet_main_id;
    int64_t sum;
};

static void add_ten(void *arg) {
    struct own_tasklets *o = arg;
    o->tasklet_main_id = mt_main_id();
    o->sum += 10;
}

static void *thread_with_tasklets(void *arg) {
    struct own_tasklets *o = arg;
    o->main_id = mt_main_id();
    for (int i = 0; i < 3; i++) {
        CHECK_CODE(mt_spawn(add_ten, o, NULL), MT_OK);
    }
    CHECK_CODE(mt_run(), MT_OK);
    return NULL;
}

static void a_c_thread_runs_its_own_tasklets(void) {
    struct own_tasklets o = {0, 0, 0};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, thread_with_tasklets, &o) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(o.sum == 30);
    CHECK(o.main_id != 0 && o.main_id != mt_main_id()); /* its own scheduler */
    CHECK(o.tasklet_main_id == o.main_id);
}

static void *use_foreign_handle(void *arg) {
    mt_tasklet *t = arg;
    static int codes[4];
    uint64_t id;
    int alive;
    codes[0] = mt_tasklet_id(t, &id);
    codes[1] = mt_tasklet_alive(t, &alive);
    codes[2] = mt_kill(t);
    codes[3] = mt_tasklet_free(t);
    return codes;
}

static void nothing(void *arg) {
    (void)arg;
}

static void a_handle_is_refused_on_another_thread(void) {
    mt_tasklet *t = NULL;
    CHECK_CODE(mt_spawn(nothing, NULL, &t), MT_OK);
    pthread_t thread;
    void *codes = NULL;
    CHECK(pthread_create(&thread, NULL, use_foreign_handle, t) == 0);
    CHECK(pthread_join(thread, &codes) == 0);
    for (int i = 0; i < 4; i++) {
        CHECK_CODE(((int *)codes)[i], MT_EOTHERTHREAD);
    }
    int alive = 0;
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK); /* nothing changed */
    CHECK(alive == 1);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
}

struct doomed {
    mt_channel *ch;
    int code;
    int cleaned_up;
};

static void wait_forever(void *arg) {
    struct doomed *d = arg;
    int64_t v;
    d->code = mt_channel_receive_int64(d->ch, &v);
    d->cleaned_up = 1;
}

static void *thread_that_ends_with_a_blocked_tasklet(void *arg) {
    struct doomed *d = arg;
    CHECK_CODE(mt_spawn(wait_forever, d, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* it blocks; the thread returns and its scheduler ends */
    return NULL;
}

static void thread_end_kills_its_tasklets(void) {
    struct doomed d = {NULL, -1, 0};
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &d.ch), MT_OK);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, thread_that_ends_with_a_blocked_tasklet, &d) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_CODE(d.code, MT_EKILLED);
    CHECK(d.cleaned_up == 1);
    int64_t balance = 9;
    CHECK_CODE(mt_channel_balance(d.ch, &balance), MT_OK);
    CHECK(balance == 0);
    CHECK_CODE(mt_channel_free(d.ch), MT_OK);
}

int main(void) {
    RUN(a_c_thread_sends_to_main);
    RUN(a_c_thread_runs_its_own_tasklets);
    RUN(a_handle_is_refused_on_another_thread);
    RUN(thread_end_kills_its_tasklets);
    return finish();
}

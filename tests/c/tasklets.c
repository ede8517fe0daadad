/* The tasklet and scheduler functions of the C API: spawn, run, schedule, schedule_remove,
 * sleep, the current and main ids, names, kill (of a tasklet suspended in C code), handles,
 * the tasklet dump (of the thread and of the process), the dump signal and the error
 * messages. */
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

static void append(void *arg) {
    /* arg: a char buffer; appends 'a' + (number of chars so far). */
    char *log = arg;
    size_t n = strlen(log);
    log[n] = (char)('a' + n);
    log[n + 1] = 0;
}

static void spawn_then_run(void) {
    char log[8] = "";
    mt_tasklet *t = NULL;
    CHECK_CODE(mt_spawn(append, log, &t), MT_OK);
    CHECK(t != NULL);
    int alive = -1;
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK);
    CHECK(alive == 1);
    CHECK(strcmp(log, "") == 0); /* spawned, not yet run */
    CHECK_CODE(mt_run(), MT_OK);
    CHECK(strcmp(log, "a") == 0);
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK);
    CHECK(alive == 0);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
    /* No handle wanted. */
    CHECK_CODE(mt_spawn(append, log, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK(strcmp(log, "ab") == 0);
}

struct pingpong {
    char log[16];
    int n;
};

static void pinger(void *arg) {
    struct pingpong *p = arg;
    for (int i = 0; i < 2; i++) {
        p->log[p->n++] = 'P';
        CHECK_CODE(mt_schedule(), MT_OK);
    }
}

static void ponger(void *arg) {
    struct pingpong *p = arg;
    for (int i = 0; i < 2; i++) {
        p->log[p->n++] = 'p';
        CHECK_CODE(mt_schedule(), MT_OK);
    }
}

static void schedule_round_robin(void) {
    struct pingpong p = {{0}, 0};
    CHECK_CODE(mt_spawn(pinger, &p, NULL), MT_OK);
    CHECK_CODE(mt_spawn(ponger, &p, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK(strcmp(p.log, "PpPp") == 0);
}

struct ids {
    uint64_t current, main;
};

static void record_ids(void *arg) {
    struct ids *ids = arg;
    ids->current = mt_current_id();
    ids->main = mt_main_id();
}

static void current_and_main_ids(void) {
    uint64_t main_id = mt_main_id();
    CHECK(main_id != 0);
    CHECK(mt_current_id() == main_id); /* outside any tasklet */
    struct ids ids = {0, 0};
    mt_tasklet *t = NULL;
    CHECK_CODE(mt_spawn(record_ids, &ids, &t), MT_OK);
    uint64_t id = 0;
    CHECK_CODE(mt_tasklet_id(t, &id), MT_OK);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK(ids.current == id && id != main_id);
    CHECK(ids.main == main_id);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
}

struct pauser {
    int first, second;
    int cleaned_up;
};

static void pause_twice(void *arg) {
    struct pauser *p = arg;
    p->first = mt_schedule_remove();
    /* After a kill, nothing that switches or blocks may suspend it again. */
    p->second = mt_schedule_remove();
    p->cleaned_up = 1;
}

static void schedule_remove_then_kill(void) {
    struct pauser p = {-1, -1, 0};
    mt_tasklet *t = NULL;
    CHECK_CODE(mt_spawn(pause_twice, &p, &t), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* it pauses itself: run returns */
    int alive = 0;
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK);
    CHECK(alive == 1 && p.first == -1);
    CHECK_CODE(mt_kill(t), MT_OK); /* it runs now, gets MT_EKILLED and returns */
    CHECK(p.first == MT_EKILLED);
    CHECK(p.second == MT_EKILLED); /* the kill is sticky */
    CHECK(p.cleaned_up == 1);
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK);
    CHECK(alive == 0);
    CHECK_CODE(mt_kill(t), MT_OK); /* a dead tasklet: nothing to do */
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
}

static void schedule_remove_of_main_alone_returns_at_once(void) {
    CHECK_CODE(mt_schedule_remove(), MT_OK);
    CHECK(mt_current_id() == mt_main_id());
    char log[8] = "";
    CHECK_CODE(mt_spawn(append, log, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* main is still in the run queue */
    CHECK(strcmp(log, "a") == 0);
}

static void record_then_yield(void *arg) {
    int *got = arg;
    got[0] = 1;
    got[1] = mt_schedule();
}

static void kill_a_tasklet_that_never_ran(void) {
    int got[2] = {0, 0};
    mt_tasklet *t = NULL;
    CHECK_CODE(mt_spawn(record_then_yield, got, &t), MT_OK);
    CHECK_CODE(mt_kill(t), MT_OK);
    CHECK(got[0] == 0); /* its function never ran */
    int alive = 1;
    CHECK_CODE(mt_tasklet_alive(t, &alive), MT_OK);
    CHECK(alive == 0);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
}

static void receive_once(void *arg) {
    int64_t v;
    CHECK_CODE(mt_channel_receive_int64(arg, &v), MT_OK);
}

struct sleeper {
    char log[8];
    int n;
};

static void sleep_then_log(void *arg) {
    struct sleeper *s = arg;
    CHECK_CODE(mt_sleep_ns(2000000), MT_OK);
    s->log[s->n++] = 'S';
}

static void log_at_once(void *arg) {
    struct sleeper *s = arg;
    s->log[s->n++] = 'F';
}

static void sleep_lets_others_run(void) {
    struct sleeper s = {{0}, 0};
    CHECK_CODE(mt_spawn(sleep_then_log, &s, NULL), MT_OK);
    CHECK_CODE(mt_spawn(log_at_once, &s, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK(strcmp(s.log, "FS") == 0);
}

static void named(void) {
    mt_tasklet *t = NULL;
    char log[8] = "";
    CHECK_CODE(mt_spawn(append, log, &t), MT_OK);
    CHECK_CODE(mt_tasklet_set_name(t, "worker-1"), MT_OK);
    CHECK_CODE(mt_tasklet_set_name(t, "\xff"), MT_EINVAL);
    CHECK_CODE(mt_tasklet_set_name(t, NULL), MT_OK);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
}

static void dump_lists_the_tasklets(void) {
    mt_channel *ch = NULL;
    mt_tasklet *t = NULL;
    CHECK_CODE(mt_channel_new(MT_CHANNEL_INT64, &ch), MT_OK);
    CHECK_CODE(mt_spawn(receive_once, ch, &t), MT_OK);
    CHECK_CODE(mt_tasklet_set_name(t, "worker-1"), MT_OK);
    CHECK_CODE(mt_run(), MT_OK); /* it blocks in the receive */
    size_t needed = 0;
    CHECK_CODE(mt_dump(NULL, 0, &needed), MT_OK);
    CHECK(needed > 0);
    char *text = malloc(needed + 1);
    CHECK_CODE(mt_dump(text, needed + 1, NULL), MT_OK);
    CHECK(strlen(text) == needed);
    uint64_t id = 0;
    CHECK_CODE(mt_tasklet_id(t, &id), MT_OK);
    char want[128];
    snprintf(want, sizeof want, "tasklet %llu \"worker-1\": blocked receiving on channel ",
             (unsigned long long)id);
    CHECK(strstr(text, want) != NULL);
    CHECK(strncmp(text, "2 tasklets on thread ", 21) == 0);
    char small[8];
    CHECK_CODE(mt_dump(small, sizeof small, NULL), MT_OK);
    CHECK(strlen(small) == 7 && strncmp(small, text, 7) == 0); /* cut, NUL-terminated */
    CHECK_CODE(mt_dump(NULL, 4, NULL), MT_ENULL);
    free(text);
    CHECK_CODE(mt_channel_send_int64(ch, 1), MT_OK);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
    CHECK_CODE(mt_channel_free(ch), MT_OK);
}

static void dump_all_lists_this_thread_and_the_signal_installs(void) {
    CHECK_CODE(mt_init_thread(), MT_OK);
    char text[4096];
    size_t needed = 0;
    CHECK_CODE(mt_dump_all(text, sizeof text, &needed), MT_OK);
    CHECK(strlen(text) == needed);
    CHECK(strncmp(text, "microthread: ", 13) == 0);
    char want[64];
    snprintf(want, sizeof want, "tasklet %llu (main): running\n",
             (unsigned long long)mt_main_id());
    CHECK(strstr(text, want) != NULL);
    CHECK_CODE(mt_dump_all(NULL, 4, NULL), MT_ENULL);
    CHECK_CODE(mt_install_dump_signal(SIGSEGV), MT_EINVAL);
    CHECK_CODE(mt_install_dump_signal(0), MT_EINVAL);
    CHECK_CODE(mt_install_dump_signal(SIGUSR2), MT_OK);
}

static void null_arguments(void) {
    mt_tasklet *t = NULL;
    uint64_t id;
    int alive;
    CHECK_CODE(mt_spawn(NULL, NULL, &t), MT_ENULL);
    CHECK(t == NULL);
    CHECK_CODE(mt_tasklet_free(NULL), MT_ENULL);
    CHECK_CODE(mt_tasklet_id(NULL, &id), MT_ENULL);
    CHECK_CODE(mt_tasklet_alive(NULL, &alive), MT_ENULL);
    CHECK_CODE(mt_kill(NULL), MT_ENULL);
    CHECK_CODE(mt_tasklet_set_name(NULL, "x"), MT_ENULL);
    char log[8] = "";
    CHECK_CODE(mt_spawn(append, log, &t), MT_OK);
    CHECK_CODE(mt_tasklet_id(t, NULL), MT_ENULL);
    CHECK_CODE(mt_tasklet_alive(t, NULL), MT_ENULL);
    CHECK_CODE(mt_run(), MT_OK);
    CHECK_CODE(mt_tasklet_free(t), MT_OK);
}

static void error_messages(void) {
    CHECK(strcmp(mt_strerror(MT_OK), "success") == 0);
    CHECK(strcmp(mt_strerror(MT_ECLOSED), "Send/receive operation on a closed channel") == 0);
    CHECK(strstr(mt_strerror(MT_EDEADLOCK), "Deadlock") != NULL);
    CHECK(strstr(mt_strerror(MT_EKILLED), "killed") != NULL);
    CHECK(strcmp(mt_strerror(12345), "unknown microthread error code") == 0);
    /* Every code has its own message. */
    for (int c = MT_EDEADLOCK; c <= MT_ENOSTACK; c++) {
        CHECK(strcmp(mt_strerror(c), "unknown microthread error code") != 0);
        CHECK(strcmp(mt_strerror(c), mt_strerror(c == MT_EDEADLOCK ? MT_ENOSTACK : c - 1)) != 0);
    }
    for (int c = MT_EKILLED; c <= MT_EINVAL; c++) {
        CHECK(strcmp(mt_strerror(c), "unknown microthread error code") != 0);
    }
}

int main(void) {
    RUN(spawn_then_run);
    RUN(schedule_round_robin);
    RUN(current_and_main_ids);
    RUN(schedule_remove_then_kill);
    RUN(schedule_remove_of_main_alone_returns_at_once);
    RUN(kill_a_tasklet_that_never_ran);
    RUN(sleep_lets_others_run);
    RUN(named);
    RUN(dump_lists_the_tasklets);
    RUN(dump_all_lists_this_thread_and_the_signal_installs);
    RUN(null_arguments);
    RUN(error_messages);
    return finish();
}

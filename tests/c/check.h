/* check.h: the assertions of the C tests (the tests/c programs, run by ci/c-tests.sh). Each test is a
 * function; CHECK records a failure with its line and goes on; main() ends with the closing
 * line "N passed, N failed" and exits non-zero if anything failed. */
#ifndef MICROTHREAD_TEST_CHECK_H
#define MICROTHREAD_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "microthread.h"

static int check_failures;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
            check_failures++;                                                             \
        }                                                                                 \
    } while (0)

/* An mt_* call that must return `want`; prints both messages when it does not. */
#define CHECK_CODE(call, want)                                                            \
    do {                                                                                  \
        int check_got_ = (call);                                                          \
        if (check_got_ != (want)) {                                                       \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__,   \
                    __LINE__, #call, check_got_, mt_strerror(check_got_), (want),         \
                    mt_strerror(want));                                                   \
            check_failures++;                                                             \
        }                                                                                 \
    } while (0)

static int tests_passed, tests_failed;

static void run_test(const char *name, void (*test)(void)) {
    int before = check_failures;
    test();
    /* Each test ends with nothing left to run, so that the next starts from main alone. */
    CHECK(mt_current_id() == mt_main_id());
    if (check_failures == before) {
        tests_passed++;
        printf("test %s ... ok\n", name);
    } else {
        tests_failed++;
        printf("test %s ... FAILED\n", name);
    }
}

#define RUN(test) run_test(#test, test)

static int finish(void) {
    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}

#endif

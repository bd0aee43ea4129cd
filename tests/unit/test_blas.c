/*
 * Tests of the choice of OpenBLAS kernels (engine/blas.h): generic kernels are replaced by the
 * best ones the CPU's instructions allow, a specific choice is kept, and a user's
 * OPENBLAS_CORETYPE is what the library runs with (Debian's OpenBLAS has every kernel built in;
 * with one built for a single CPU, which ignores OPENBLAS_CORETYPE, the restart is skipped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <cmocka.h>

#include "blas.h"

static void test_better_core(void **state)
{
    (void)state;
    const struct vs__cpu_isa avx512 = {1, 1, 1}, avx2 = {0, 1, 1}, avx = {0, 0, 1}, none = {0};
    assert_string_equal(vs__blas_better_core("Prescott", &avx512), "SkylakeX");
    assert_string_equal(vs__blas_better_core("Prescott", &avx2), "Haswell");
    assert_string_equal(vs__blas_better_core("Core2", &avx), "Sandybridge");
    assert_string_equal(vs__blas_better_core("Barcelona", &avx2), "Haswell");
    assert_null(vs__blas_better_core("Prescott", &none));
    /* What OpenBLAS recognised stays, even where another kernel would also run. */
    assert_null(vs__blas_better_core("Haswell", &avx512));
    assert_null(vs__blas_better_core("SkylakeX", &avx512));
    assert_null(vs__blas_better_core("Zen", &avx2));
    assert_null(vs__blas_better_core(NULL, &avx512));
}

/* The whole path, in a child (this program again, made to report its kernels) run with a given
 * environment: the kernels the child ends up with. */
static void run_with(const char *env, const char *mode, char *out, size_t len)
{
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = 0;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "env -u OPENBLAS_CORETYPE %s '%s' %s", env, self, mode);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = 0;
    if (!fgets(out, (int)len, p)) {
        out[0] = 0;
    }
    out[strcspn(out, "\n")] = 0;
    assert_int_equal(pclose(p), 0);
}

static void test_reexec(void **state)
{
    (void)state;
    struct vs__cpu_isa isa;
    vs__cpu_isa_detect(&isa);
    char user[128], chosen[128];
    run_with("OPENBLAS_CORETYPE=Core2", "corename-raw", user, sizeof(user));
    if (strcmp(user, "Core2") != 0) {
        /* An OpenBLAS built for one CPU only ignores OPENBLAS_CORETYPE: nothing to choose. */
        skip();
    }
    run_with("OPENBLAS_CORETYPE=Core2", "corename", user, sizeof(user));
    assert_string_equal(user, "Core2"); /* the user's choice is kept */
    run_with("", "corename", chosen, sizeof(chosen));
    assert_true(chosen[0] != 0);
    /* Whatever OpenBLAS detects here, the program never ends up with kernels that the check
     * would replace. */
    assert_null(vs__blas_better_core(chosen, &isa));
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "corename-raw")) {
        puts(openblas_get_corename()); /* what the library chose, without the check */
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "corename")) {
        vs__blas_kernels_check(argv);
        puts(openblas_get_corename());
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_better_core),
        cmocka_unit_test(test_reexec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

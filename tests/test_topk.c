/* Suite "topk" (being written). */
#include "test_util.h"

START_TEST(test_placeholder)
{
    ck_assert_int_eq(xcat_version_number(), XCAT_VERSION_NUMBER);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topk");
    TCase *tc = tcase_create("placeholder");
    tcase_add_test(tc, test_placeholder);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}

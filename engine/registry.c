/*
 * The operator table (see registry.h). value runs before profile so that the profile a purchase
 * emits carries the value scores that purchase produced; churn reads value's section too.
 */
#include <string.h>

#include "registry.h"

const struct vs_operator *const vs__operators[] = {
    &vs_value_operator, &vs_churn_operator, &vs_profile_operator, &vs_recommend_operator,
    &vs_fraud_operator,
};

const int vs__operator_count = (int)(sizeof(vs__operators) / sizeof(vs__operators[0]));

int vs__operator_index(const char *name)
{
    for (int i = 0; i < vs__operator_count; i++) {
        if (strcmp(vs__operators[i]->name, name) == 0) {
            return i;
        }
    }
    return -1;
}

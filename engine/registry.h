/*
 * The operator table: every operator the engine runs, in the order it runs them for each event.
 * Order matters: an operator sees, through vs_ctx_section(), the sections of the operators
 * before it already updated by the current event (profile reads value's scores).
 */
#ifndef VS_ENGINE_REGISTRY_H
#define VS_ENGINE_REGISTRY_H

#include <valuestream/operator.h>

extern const struct vs_operator vs_value_operator;
extern const struct vs_operator vs_churn_operator;
extern const struct vs_operator vs_profile_operator;
extern const struct vs_operator vs_recommend_operator;
extern const struct vs_operator vs_fraud_operator;

extern const struct vs_operator *const vs__operators[];
extern const int vs__operator_count;

/* Index of the operator named name in vs__operators, or -1. */
int vs__operator_index(const char *name);

#endif

/*
 * The fraud operator's entry points beyond its struct vs_operator (vs_fraud_operator, engine
 * registry): fraud labels, e.g. chargebacks from the vs.fraud-labels topic, and the
 * `valuestream eval anomaly` command (eval_anomaly.h).
 */
#ifndef VS_FRAUD_FRAUD_H
#define VS_FRAUD_FRAUD_H

#include <valuestream/operator.h>

#include "eval_anomaly.h"

extern const struct vs_operator vs_fraud_operator;

/*
 * A label for the purchase event_id: is_fraud true keeps that purchase out of the forest's window
 * (taken out if already learned, never learned if it arrives later, while the label is among the
 * last 4096 remembered) and counts toward the live precision and recall of the alerts (gauges
 * fraud.live.precision, fraud.live.recall). self is the operator instance from init. Call on the
 * loop thread, in the engine's event order (labels change the model). Returns 0.
 */
int vs_fraud_label(void *self, const char *event_id, int is_fraud);

#endif

/*
 * valuestream: a streaming engine for an online shop's customer lifecycle.
 * The public API: errors, events, config and the operator interface.
 */
#ifndef VALUESTREAM_H
#define VALUESTREAM_H

#include "config.h"
#include "error.h"
#include "event.h"
#include "operator.h"

#endif

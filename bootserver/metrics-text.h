/* Prometheus's text exposition format: what /metrics and the webhooks'
 * counters share. */
#pragma once

#include <stdio.h>

/* Writes s to f as a label value, in double quotes, with the text format's
 * escapes: backslash, double quote and newline, each after a backslash
 * (\\, \", \n); every other byte as it is. No label value is empty:
 * NULL and "" are written "none". */
void metrics_label_put(FILE *f, const char *s);

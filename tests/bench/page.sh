#!/bin/bash
# The fleet page at fleet scale: tests/integration/page.sh with 10,000
# simulated hosts (PAGE_HOSTS) in headless Chromium. Prints the time from
# the login to the first drawn matrix, and, while a rollout of every host
# runs (waves of 1%, 10%, 100%, hosts taking leases and running what they
# are given), the audit entries written and received by the page per
# second, the matrix's redraws per second and how long one takes.
# Figures, not a test: the machine's speed decides them.
TOP=$(cd "$(dirname "$0")/../.." && pwd)
export PAGE_MODE=bench PAGE_HOSTS=${PAGE_HOSTS:-10000}
echo "== the fleet page in Chromium, $PAGE_HOSTS hosts (tests/bench/page.sh)"
"$TOP/tests/integration/page.sh" | sed 's/^/  /'
jq -r 'to_entries[] | "  \(.key): \(.value)"' "$TOP/build/bench-page/figures.json" 2>/dev/null ||
        echo "  no figures"

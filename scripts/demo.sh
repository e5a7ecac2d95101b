#!/usr/bin/env bash
# Set up and run the demo: a service with a planted leak, and the report that finds it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/leaky_service.py "$@"

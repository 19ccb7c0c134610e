#!/usr/bin/env bash
# Validates an ndjson event trace against Migration with TLC (spec/migration/TraceMigration.tla).
# The trace path cannot come from the environment (IOEnv needs the CommunityModules), so this
# writes a .cfg with TraceFile = <trace> and the constants of BASE_CFG (default: SIMMigration.cfg,
# the model of traces/vectors/migration), then runs TLC.
#
# Usage: spec/tools/check-trace.sh TRACE.ndjson [BASE_CFG]
# Exit:  0 accepted; 10 rejected (TLC prints how far it got); anything else: a TLC or usage error.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JAR=${TLA2TOOLS_JAR:-$ROOT/.tools/tla2tools.jar}
[ $# -ge 1 ] || { echo "usage: $0 TRACE.ndjson [BASE_CFG]" >&2; exit 2; }
[ -f "$JAR" ] || { echo "TLC not found: set TLA2TOOLS_JAR or put tla2tools.jar in .tools/" >&2; exit 2; }
TRACE=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
BASE=${2:-$ROOT/spec/migration/SIMMigration.cfg}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The constants of the base model (up to SPECIFICATION), minus VectorDir, plus TraceFile.
{
  sed -n '/^CONSTANTS/,/^SPECIFICATION/p' "$BASE" | grep -v '^SPECIFICATION' | grep -v 'VectorDir'
  echo "    TraceFile = \"$TRACE\""
  echo "SPECIFICATION TraceSpec"
  echo "VIEW TraceView"
  echo "POSTCONDITION TraceAccepted"
  echo "CHECK_DEADLOCK FALSE"
} > "$WORK/TraceMigration.cfg"

cd "$ROOT/spec/migration"
set +e
java -XX:+UseParallelGC -DTLA-Library="$ROOT/spec/cuts" -cp "$JAR" tlc2.TLC -workers 1 \
  -noGenerateSpecTE -metadir "$WORK/meta" -config "$WORK/TraceMigration.cfg" TraceMigration.tla \
  > "$WORK/tlc.log" 2>&1
rc=$?
set -e
grep -E '^(Error|Finished in|[0-9,]+ states generated)|distinct states|diameter' "$WORK/tlc.log" || true
case $rc in
  0) echo "accepted: $1 ($(wc -l < "$TRACE") events)" ;;
  10)
    depth=$(grep -oE 'depth of the complete state graph search is [0-9]+' "$WORK/tlc.log" | grep -oE '[0-9]+$' || echo 1)
    echo "rejected: $1 — no behaviour of Migration explains the whole trace"
    echo "matched the first $((depth - 1)) of $(wc -l < "$TRACE") events; no step matches event $depth:"
    sed -n "${depth}p" "$TRACE" | cut -c1-400 ;;
  *) tail -30 "$WORK/tlc.log"; echo "TLC failed (rc $rc)" ;;
esac
exit $rc

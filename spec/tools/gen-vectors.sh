#!/usr/bin/env bash
# Regenerates traces/vectors/ (the TLC-sampled behaviours the F# mirror is tested against) and
# traces/vectors/manifest.json.  Needs java, jq, sha256sum and tla2tools.jar (TLA2TOOLS_JAR or
# .tools/tla2tools.jar).  Never run on CI: the vectors are committed.
#
# Usage: spec/tools/gen-vectors.sh            (defaults below; same seed => same vectors)
#        NUM_CUTS=100 DEPTH_CUTS=12 NUM_MIGRATION=100 DEPTH_MIGRATION=24 SEED=1 spec/tools/gen-vectors.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JAR=${TLA2TOOLS_JAR:-$ROOT/.tools/tla2tools.jar}
NUM_CUTS=${NUM_CUTS:-80}
DEPTH_CUTS=${DEPTH_CUTS:-12}
NUM_MIGRATION=${NUM_MIGRATION:-70}
DEPTH_MIGRATION=${DEPTH_MIGRATION:-30}
SEED=${SEED:-20261123}
OUT=$ROOT/traces/vectors

[ -f "$JAR" ] || { echo "TLC not found: set TLA2TOOLS_JAR or put tla2tools.jar in .tools/" >&2; exit 2; }
for tool in java jq sha256sum; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

META=$(mktemp -d)
trap 'rm -rf "$META" "$ROOT/spec/cuts/vectors-out" "$ROOT/spec/migration/vectors-out"' EXIT

# gen SPEC DIR NUM DEPTH: simulate SPEC's SIM model and convert its raw behaviours.
gen() {
  local spec=$1 dir=$2 num=$3 depth=$4
  local src=$ROOT/spec/$dir
  rm -rf "$src/vectors-out" && mkdir "$src/vectors-out"
  (cd "$src" && java -XX:+UseParallelGC -DTLA-Library="$ROOT/spec/cuts" -cp "$JAR" tlc2.TLC \
      -workers 1 -noGenerateSpecTE -metadir "$META/$spec" -config "SIM$spec.cfg" \
      -simulate "num=$num" -depth "$depth" -seed "$SEED" "SIM$spec.tla") > "$META/$spec.log" 2>&1 || {
    tail -30 "$META/$spec.log" >&2; echo "TLC failed on SIM$spec" >&2; exit 1; }
  rm -rf "${OUT:?}/$dir" && mkdir -p "$OUT/$dir"
  jq -S '.[0]' "$src/vectors-out/constants.json" > "$OUT/$dir/constants.json"
  for i in $(seq 1 "$num"); do
    # The longest prefix TLC wrote of behaviour i; every shorter one must be a prefix of it.
    local longest prefix
    longest=$(ls "$src/vectors-out" | grep "^raw-$i-" | sort -t- -k3 -n | tail -1)
    for prefix in $(ls "$src/vectors-out" | grep "^raw-$i-"); do
      head -n "$(wc -l < "$src/vectors-out/$prefix")" "$src/vectors-out/$longest" \
        | cmp -s - "$src/vectors-out/$prefix" || { echo "behaviour $i: $prefix is not a prefix of $longest" >&2; exit 1; }
    done
    jq -c -S '{action: ._action.name, params: (._action.context // {}), state: del(._action)}' \
      "$src/vectors-out/$longest" > "$OUT/$dir/beh-$(printf %04d "$i").ndjson"
    # No stuttering steps: consecutive states differ.
    if [ "$(jq -c .state "$OUT/$dir/beh-$(printf %04d "$i").ndjson" | uniq -d | wc -l)" != 0 ]; then
      echo "behaviour $i has a stuttering step" >&2; exit 1
    fi
  done
  rm -rf "$src/vectors-out"
}

gen Cuts cuts "$NUM_CUTS" "$DEPTH_CUTS"
gen Migration migration "$NUM_MIGRATION" "$DEPTH_MIGRATION"

TLC_VERSION=$(grep -m1 '^TLC2 Version' "$META/Cuts.log")
hashes() {
  for f in "$@"; do
    printf '{"path":"%s","sha256":"%s"}\n' "$f" "$(sha256sum "$ROOT/$f" | cut -d' ' -f1)"
  done | jq -s .
}
CUTS_FILES=(spec/cuts/Cuts.tla spec/cuts/MCCuts.tla spec/cuts/SIMCuts.tla spec/cuts/SIMCuts.cfg)
MIG_FILES=(spec/cuts/Cuts.tla spec/migration/Migration.tla spec/migration/MCMigration.tla
           spec/migration/SIMMigration.tla spec/migration/SIMMigration.cfg)
jq -n -S \
  --arg tlc "$TLC_VERSION" \
  --arg jar "$(sha256sum "$JAR" | cut -d' ' -f1)" \
  --argjson seed "$SEED" \
  --argjson cutsSpec "$(hashes "${CUTS_FILES[@]}")" \
  --argjson migSpec "$(hashes "${MIG_FILES[@]}")" \
  --argjson nc "$NUM_CUTS" --argjson dc "$DEPTH_CUTS" \
  --argjson nm "$NUM_MIGRATION" --argjson dm "$DEPTH_MIGRATION" \
  '{format: "traces/vectors/README.md",
    generator: "spec/tools/gen-vectors.sh",
    tlc: {version: $tlc, jarSha256: $jar},
    sets: [
      {name: "cuts", dir: "traces/vectors/cuts", module: "spec/cuts/SIMCuts.tla", cfg: "spec/cuts/SIMCuts.cfg",
       tlcArgs: "-workers 1 -simulate num=\($nc) -depth \($dc) -seed \($seed)",
       behaviours: $nc, depth: $dc, seed: $seed, specFiles: $cutsSpec},
      {name: "migration", dir: "traces/vectors/migration", module: "spec/migration/SIMMigration.tla",
       cfg: "spec/migration/SIMMigration.cfg",
       tlcArgs: "-workers 1 -simulate num=\($nm) -depth \($dm) -seed \($seed)",
       behaviours: $nm, depth: $dm, seed: $seed, specFiles: $migSpec}]}' > "$OUT/manifest.json"
du -sh "$OUT"
echo "vectors written to $OUT"

#!/usr/bin/env bash
# Workload W1 run by Finch and by the reference engine (LangGraph + its PostgreSQL
# checkpointer) in one loop, interleaved, so both see the same machine: the disk here switches
# between fast and throttled flushes by itself, and only figures from one run compare.
#
#   examples/w1/side-by-side.sh [ANCHOR_DIR]     (default: ../shared/bench/langgraph_anchor)
#
# Environment (defaults in brackets): REPS [3], CONVERSATIONS [200], TURNS [5],
# CONCURRENCY ["1 32"], CONFIGS ["pg_sync raw"] (the reference's configurations),
# OUT_DIR [target/w1], VENV [${TMPDIR:-/tmp}/langgraph-anchor-venv], SKIP_SEED [0],
# PGHOST/PGPORT/PGUSER [127.0.0.1/5432/root], BENCH_DB [bench_anchor].
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ANCHOR="$(cd "${1:-$ROOT/../shared/bench/langgraph_anchor}" && pwd)"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-root}"
DB="${BENCH_DB:-bench_anchor}"
export BENCH_DSN="${BENCH_DSN:-postgresql://${PGUSER}@${PGHOST}:${PGPORT}/${DB}}"
VENV="${VENV:-${TMPDIR:-/tmp}/langgraph-anchor-venv}"
REPS="${REPS:-3}"
CONVERSATIONS="${CONVERSATIONS:-200}"
TURNS="${TURNS:-5}"
CONCURRENCY="${CONCURRENCY:-1 32}"
CONFIGS="${CONFIGS:-pg_sync raw}"
OUT_DIR="${OUT_DIR:-$ROOT/target/w1}"
export LANGSMITH_TRACING=false LANGCHAIN_TRACING_V2=false PYTHONHASHSEED=0

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The reference scripts are read-only where they live: run a copy.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$ANCHOR"/. "$WORK"
chmod -R u+w "$WORK"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV with the reference's pinned packages"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$WORK/requirements.lock.txt"
fi

if ! psql -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  createdb "$DB"
fi
if [[ "${SKIP_SEED:-0}" != 1 ]]; then
  log "seeding $DB"
  PGOPTIONS='-c client_min_messages=warning' psql -d "$DB" -v ON_ERROR_STOP=1 -q -f "$WORK/seed.sql" >/dev/null
fi

log "building finch (release)"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin finch
FINCH="$ROOT/target/release/finch"

mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
SIZES="$WORK/state_sizes.json"
(cd "$WORK" && "$VENV/bin/python" state_size.py --turns "$TURNS" --out "$SIZES" >/dev/null)

for rep in $(seq 1 "$REPS"); do
  for conc in $CONCURRENCY; do
    common=(--concurrency "$conc" --conversations "$CONVERSATIONS" --turns "$TURNS" --rep "$rep" --out "$OUT")
    for cfg in $CONFIGS; do
      log "rep $rep  $cfg  c=$conc"
      if [[ "$cfg" == raw ]]; then
        (cd "$WORK" && "$VENV/bin/python" bench_raw.py "${common[@]}" --state-sizes "$SIZES" >/dev/null)
      else
        (cd "$WORK" && "$VENV/bin/python" bench_langgraph.py --config "$cfg" "${common[@]}" >/dev/null)
      fi
    done
    log "rep $rep  finch  c=$conc"
    (cd "$ROOT" && "$FINCH" bench w1 --db "$BENCH_DSN" "${common[@]}" >/dev/null)
  done
done

log "results: $OUT"
"$VENV/bin/python" "$WORK/report.py" "$OUT" --out "${OUT%.jsonl}.md"

#!/usr/bin/env bash
# Umbra and C tor side by side, in one run, on this machine: prints Umbra/Tor ratios.
#
#   bash benches/compare-tor.sh [TOR_LOCALNET_DIR]
#
# TOR_LOCALNET_DIR (or $TORNET_BENCH) is the shared private-Tor-network bench, by default
# ../shared/bench/tor-localnet beside this repository. It installs Debian's `tor` when
# missing (as root; the package's own service is kept from starting) and runs every tor
# process on loopback inside a private network namespace where allowed.
# Steps: release build, `umbra bench` (8 relay processes), then the C tor network
# (3 authorities + 5 relays) with the same measurements, then the ratio table.
# Results go to target/compare-tor/ (umbra.json, tor.json, the two reports, ratios.txt).
# Takes about 10 minutes on 2 cores. TORNET_VARIANTS=1 adds Tor's conflux and Vanilla-
# scheduler variants (+2 min); the ratio table then shows the Vanilla circuit build too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORNET_BENCH="${1:-${TORNET_BENCH:-$ROOT/../shared/bench/tor-localnet}}"
OUT="${COMPARE_OUT:-$ROOT/target/compare-tor}"
[ -f "$TORNET_BENCH/run.sh" ] || {
  echo "compare-tor: no tor-localnet bench at $TORNET_BENCH (pass its directory)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "compare-tor: python3 is needed" >&2; exit 2; }
command -v curl >/dev/null || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
  else echo "compare-tor: curl is needed (apt-get install -y curl)" >&2; exit 2; fi; }
mkdir -p "$OUT"

echo "[compare] building umbra (release)" >&2
(cd "$ROOT" && cargo build --release --quiet)
echo "[compare] umbra bench" >&2
"$ROOT/target/release/umbra" bench --json "$OUT/umbra.json" | tee "$OUT/umbra.txt"

echo "[compare] C tor on a private loopback network (run.sh; about 6 minutes)" >&2
TORNET_VARIANTS="${TORNET_VARIANTS:-0}" TORNET_JSON="$OUT/tor.json" \
  bash "$TORNET_BENCH/run.sh" > "$OUT/tor.txt"

python3 "$ROOT/benches/compare_ratios.py" "$OUT/umbra.json" "$OUT/tor.json" | tee "$OUT/ratios.txt"

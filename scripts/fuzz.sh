#!/usr/bin/env bash
# Fuzzes the SASL/SCRAM message parsers (fuzz/fuzz_targets/) with cargo-fuzz (libFuzzer) on
# the stable toolchain: `-s none` (no sanitizer; those need nightly), release build with
# debug assertions. Installs cargo-fuzz if missing. A crash fails the run and leaves its
# input in fuzz/artifacts/; add it to fuzz/seeds/ and a regression test beside the parser.
#
#   scripts/fuzz.sh            every target for 60 s
#   FUZZ_SECONDS=600 scripts/fuzz.sh scram_server
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "fuzz.sh: cargo install cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    echo "fuzz.sh: $target for ${SECONDS_PER_TARGET}s" >&2
    mkdir -p "$work/$target"
    # New inputs go to the temporary corpus; the committed seeds are only read.
    if ! cargo fuzz run --sanitizer none --release --debug-assertions "$target" \
        "$work/$target" "seeds/$target" -- -max_total_time="$SECONDS_PER_TARGET" \
        >"$work/$target.log" 2>&1; then
        tail -n 60 "$work/$target.log" >&2
        echo "fuzz.sh: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "^Done [0-9]+ runs" "$work/$target.log" | sed "s/^/fuzz.sh: $target: /" >&2
done

#!/bin/sh
# Builds the two binaries that the image ships: release mode, Swift runtime linked statically.
# docker/Dockerfile runs this, and so does scripts/check-docker.sh, so what CI builds and
# tests is built exactly the way the image's binaries are.
#
# usage: docker/build-binaries.sh OUTDIR [more `swift build` options, e.g. --scratch-path DIR]
#        docker/build-binaries.sh --print-flags   (the build flags alone: scripts/bench.sh
#                                                  measures binaries built with the same ones)
# Run from the package root. Copies authgate and upstream-echo into OUTDIR, stripped: the
# symbols and debug information take two thirds of each binary (90 MB → 31 MB here).
#
# The flags, and why (BENCHMARKS.md has the A/B runs):
# - --static-swift-stdlib: the image needs no Swift runtime, and calls into it (retain/release,
#   exclusivity checks and their thread-local lookups) are direct instead of through the PLT
#   and __tls_get_addr.
# - No -cross-module-optimization: it was tried (2026-12-01/02) and four A/B runs gave no gain
#   that outlasted the noise; in the quiet one the cross-module build used 0.96x (HS256) and
#   1.06x (RS256) the CPU per request of this one. A flag that cannot be shown to pay is dropped.
# - -Xswiftc -enforce-exclusivity=unchecked: the run-time exclusivity checks off in every module,
#   NIO's and swift-crypto's too (Package.swift already turns them off for authgate's own; a
#   package cannot set it for its dependencies). They were 9% of the user-space instructions
#   per request (11% fewer with the flag, callgrind), and user time follows instructions
#   here (BENCHMARKS.md, "2026-12-03, evening"). The checks catch a programming error, not bad
#   input; `swift test` and every debug build keep them.
set -eu
flags="-c release --static-swift-stdlib -Xswiftc -enforce-exclusivity=unchecked"
if [ "${1:-}" = "--print-flags" ]; then
    echo "$flags"
    exit 0
fi
out=${1:?usage: docker/build-binaries.sh OUTDIR [swift build options]}
shift

for product in authgate upstream-echo; do
    # shellcheck disable=SC2086 # $flags is a list of options
    swift build $flags --product "$product" "$@"
done
# shellcheck disable=SC2086
bin=$(swift build $flags --show-bin-path "$@")
mkdir -p "$out"
for product in authgate upstream-echo; do
    cp "$bin/$product" "$out/$product"
    strip "$out/$product"
done

#!/bin/sh
# Builds the two binaries that the image ships: release mode, Swift runtime linked statically.
# docker/Dockerfile runs this, and so does scripts/check-docker.sh, so what CI builds and
# tests is built exactly the way the image's binaries are.
#
# usage: docker/build-binaries.sh OUTDIR [more `swift build` options, e.g. --scratch-path DIR]
# Run from the package root. Copies authgate and upstream-echo into OUTDIR, stripped: the
# symbols and debug information take two thirds of each binary (90 MB → 31 MB here).
set -eu
out=${1:?usage: docker/build-binaries.sh OUTDIR [swift build options]}
shift

flags="-c release --static-swift-stdlib"
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

#!/bin/sh
# DEMO helper, run by the one-shot `hs256-secret` service of docker/compose.yaml (and by
# scripts/check-docker.sh): writes the HS256 secret that demo/gateway.json reads with
# `secret_file`, so that no secret is ever part of the image or of this repository.
#
# usage: make-secret.sh FILE
#   AUTHGATE_HS256_SECRET set and non-empty: FILE gets that value (at least 32 bytes, or the
#     gateway refuses the configuration).
#   otherwise: FILE is kept if it already holds a secret (tokens minted earlier stay valid
#     across restarts), else it gets 32 random bytes, hex-encoded (64 characters).
set -eu
file=${1:?usage: make-secret.sh FILE}
umask 077
if [ -n "${AUTHGATE_HS256_SECRET:-}" ]; then
    printf '%s' "$AUTHGATE_HS256_SECRET" > "$file.tmp"
    echo "hs256-secret: using AUTHGATE_HS256_SECRET from the environment"
elif [ -s "$file" ]; then
    echo "hs256-secret: keeping the existing secret"
    exit 0
else
    head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' > "$file.tmp"
    echo "hs256-secret: generated a random secret"
fi
mv -f "$file.tmp" "$file"

#!/bin/sh
# Runs a command (pip, in the image build) trusting the BuildKit secret `extra_ca` on top of pip's own CA bundle,
# when the build was given one: a TLS-inspecting proxy's CA. The combined bundle lives in a temporary file for
# the command's duration only, so no certificate reaches an image layer.
set -eu
if [ -s /run/secrets/extra_ca ]; then
    bundle=$(mktemp)
    trap 'rm -f "$bundle"' EXIT
    cat "$(python -c 'import pip._vendor.certifi as c; print(c.where())')" /run/secrets/extra_ca >"$bundle"
    PIP_CERT=$bundle "$@"
else
    "$@"
fi

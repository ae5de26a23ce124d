#!/usr/bin/env bash
# Puts the official TensorFlow Lite C API (libtensorflowlite_c.so 2.9.0 and its headers) into a cache folder,
# from the npm registry: tfjs-tflite-node@0.0.2 (TensorFlow.js's Node binding, Apache-2.0, from
# github.com/tensorflow/tfjs) ships Google's prebuilt C API library for linux_amd64/linux_arm64 with
# c_api.h. The tarball is checked against the sha256 pinned here before anything is unpacked.
#
# Usage: fetch_tflite_c.sh [DIR]   (default: $TFXP_TFLITE_C_DIR, else ${XDG_CACHE_HOME:-~/.cache}/tfxp/tflite-c-2.9.0)
# Prints DIR; DIR/lib/libtensorflowlite_c.so and DIR/include/tensorflow/lite/c/c_api.h exist after it.
set -euo pipefail
PACKAGE=tfjs-tflite-node@0.0.2
SHA256=3be1632328a76a2475e5b6833253763c802c859433becb4d879ee1860e3b5284
dir=${1:-${TFXP_TFLITE_C_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tfxp/tflite-c-2.9.0}}
if [[ -f $dir/lib/libtensorflowlite_c.so && -f $dir/include/tensorflow/lite/c/c_api.h ]]; then
    echo "$dir"
    exit 0
fi
case $(uname -m) in
    x86_64) arch=linux_amd64 ;;
    aarch64) arch=linux_arm64 ;;
    *) echo "fetch_tflite_c.sh: $PACKAGE has no C API library for $(uname -m)" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "fetch_tflite_c.sh: npm is needed to fetch $PACKAGE" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tarball=$(ls "$work"/*.tgz)
echo "$SHA256  $tarball" | sha256sum --check --quiet - || {
    echo "fetch_tflite_c.sh: $tarball is not the pinned $PACKAGE (sha256 $SHA256)" >&2
    exit 1
}
tar -xzf "$tarball" -C "$work" package/cc_deps/include "package/cc_deps/$arch/libtensorflowlite_c.so"
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp/lib"
cp -r "$work/package/cc_deps/include" "$dir.tmp/include"
cp "$work/package/cc_deps/$arch/libtensorflowlite_c.so" "$dir.tmp/lib/"
rm -rf "$dir"
mv "$dir.tmp" "$dir"   # whole or not at all: a half-copied folder is never taken for a cached one
echo "$dir"

#!/bin/sh
# Build the image named by $IMAGE_NAME from the checkout of $GECKO_HEAD_REV
# and save it where the task's artifact is collected.
set -eu
git clone --quiet "$GECKO_HEAD_REPOSITORY" /builds/worker/checkouts/src
cd /builds/worker/checkouts/src
git checkout --quiet "$GECKO_HEAD_REV"
taskgraph-images build "$IMAGE_NAME" --root .
mkdir -p /builds/worker/artifacts
taskgraph-images save "$IMAGE_NAME:latest" -o /builds/worker/artifacts/image.tar.zst

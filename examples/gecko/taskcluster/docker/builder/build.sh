#!/bin/bash
set -e
make -C "$HOME/src" -j"$(nproc)"

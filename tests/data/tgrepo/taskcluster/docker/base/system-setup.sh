#!/bin/bash
set -ex
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl git
rm -rf /var/lib/apt/lists/*

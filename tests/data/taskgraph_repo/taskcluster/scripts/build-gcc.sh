#!/bin/sh
echo "gcc $1"

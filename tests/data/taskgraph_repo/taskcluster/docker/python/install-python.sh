#!/bin/sh
echo "python $1"

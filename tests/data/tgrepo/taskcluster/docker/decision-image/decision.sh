#!/bin/sh
exec run-task -- taskgraph decision "$@"

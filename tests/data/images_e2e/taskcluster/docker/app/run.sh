#!/bin/busybox sh
/bin/busybox cat /base.txt /app.txt

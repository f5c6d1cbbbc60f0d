#!/bin/sh
# Seed corpus for fuzz_partition: tiny MBR (with a logical chain) and GPT
# disks written by sfdisk.
set -eu
out=$1
mkdir -p "$out"
rm -f "$out/mbr.img" "$out/gpt.img"
truncate -s 64k "$out/mbr.img"
printf 'label: dos\nstart=1, size=20, type=83\nstart=30, size=90, type=5\nstart=40, size=20, type=83\nstart=70, size=20, type=83\n' |
  sfdisk -q "$out/mbr.img" >/dev/null
truncate -s 64k "$out/gpt.img"
printf 'label: gpt\nstart=40, size=40, name=root\n' | sfdisk -q "$out/gpt.img" >/dev/null

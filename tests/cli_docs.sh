#!/bin/sh
# docs/cli.md agrees with the binary: for every command that `bvtool --help`
# lists, the block between <!-- help:CMD --> markers is exactly `bvtool CMD --help`.
set -eu
. "$(dirname "$0")/lib.sh"
doc="$(dirname "$0")/../docs/cli.md"
cmds=$("$BVTOOL" --help | sed -n 's/^  \([a-z-]*\)  .*/\1/p')
assert "bvtool --help lists commands" [ -n "$cmds" ]
for c in $cmds; do
	[ "$c" = help ] && continue
	want="$BV_TMP/doc.$$.want"
	got="$BV_TMP/doc.$$.got"
	# a default that is the machine's CPU count shows as "here N" in the docs
	"$BVTOOL" "$c" --help | sed 's/(default: the CPUs this process may use, here [0-9]*)$/(default: the CPUs this process may use, here N)/' >"$want"
	sed -n "/^<!-- help:$c -->\$/,/^<!-- \/help:$c -->\$/p" "$doc" | sed '1,2d;$d' | sed '$d' >"$got"
	if cmp -s "$want" "$got"; then ok; else
		fail=$((fail + 1))
		echo "FAIL: docs/cli.md's block for '$c' differs from 'bvtool $c --help':" >&2
		diff "$want" "$got" >&2 || true
	fi
	rm -f "$want" "$got"
done
finish

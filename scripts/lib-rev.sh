# Shared by tests/same_results.sh and bench/compare_builds.sh (sourced, with
# $here the repository): an earlier revision's bvtool built beside this
# checkout's, for a side-by-side run.
#   rev_setup NAME REV BUILD_DIR   checks the arguments and sets
#       rev    the revision as given     base  its commit
#       new    BUILD_DIR/bvtool          t     a temporary directory, removed
#                                              (with the revision's worktree) on exit
#   rev_build                      builds REV's bvtool in $t/src; sets old
# A usage error is one line on stderr naming NAME, and exit 2.
rev_setup() {
	_name=$1
	rev=$2
	_dir=$(cd "$3" 2>/dev/null && pwd) || {
		echo "$_name: no build directory '$3' (cmake --build build first)" >&2
		exit 2
	}
	new=$_dir/bvtool
	[ -x "$new" ] || {
		echo "$_name: no '$new' (cmake --build $_dir first)" >&2
		exit 2
	}
	base=$(git -C "$here" rev-parse --verify -q "$rev^{commit}") || {
		echo "$_name: '$rev' is not a revision of $here" >&2
		exit 2
	}
	t=$(mktemp -d "${TMPDIR:-/tmp}/bv-rev.XXXXXX")
	trap rev_cleanup EXIT INT TERM
}

rev_cleanup() {
	git -C "$here" worktree remove --force "$t/src" >/dev/null 2>&1 || true
	rm -rf "$t"
}

rev_build() {
	echo "building $rev ($base) in $t/src" >&2
	git -C "$here" worktree add -q --detach "$t/src" "$base"
	cmake -S "$t/src" -B "$t/src/build" >/dev/null # the same default build type as build/
	cmake --build "$t/src/build" -j2 --target bvtool >/dev/null
	old=$t/src/build/bvtool
}

#!/bin/sh
# Regenerate the committed seed corpora made by the tool: gen_seeds (the IDX,
# CIFAR, checkpoint and option seeds, and a tiny IDX data set), then two small
# databases collected and decomposed by bvtool on that data set, compacted
# (journal_mode DELETE, VACUUM):
#   corpus/fuzz_db/decomposed.db  ce, kd, wsl at T 2, 4, 8, 2 seeds, 2 epochs,
#                                 decomposed (test split, every epoch, with
#                                 correlations) and its dynamics; the seed of
#                                 fuzz_db_sql and fuzz_writers (BV_FUZZ_SEED_DB)
#   corpus/fuzz_db/train.db       ce, kd-filter at T 4, 2 inits of each seed,
#                                 with the training split recorded, decomposed
#                                 on train and oob (the variance split by source)
#   corpus/fuzz_db/collected.db   as decomposed.db before decompose
# (pages of 4 KB instead of bvtool's 16 KB: the same database, a quarter the size)
# The SQL and writer seeds (corpus/fuzz_db_sql, corpus/fuzz_writers) are
# written by hand. Run from anywhere after building both trees:
#   tests/fuzz/gen_seeds.sh [BUILD_FUZZ_DIR [BUILD_DIR]]   (default build-fuzz, build)
set -eu
src=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$src/../.." && pwd)
fz=${1:-$root/build-fuzz}
bvtool=${2:-$root/build}/bvtool
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$fz/tests/fuzz/gen_seeds" "$src/corpus" "$tmp/data"

common="--data idx:$tmp/data --teacher mlp:16 --teacher-epochs 2 --student mlp:8 --epochs 2 --seeds 2 --batch 32 --lr 0.05"
# shellcheck disable=SC2086
"$bvtool" collect --db "$tmp/collected.db" $common --methods ce,kd,wsl --temps 2,4,8 >/dev/null
# shellcheck disable=SC2086
"$bvtool" collect --db "$tmp/train.db" $common --methods ce,kd-filter --temps 4 --record-train --inits 2 >/dev/null
sqlite3 "$tmp/collected.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
cp "$tmp/collected.db" "$tmp/decomposed.db"
"$bvtool" decompose --db "$tmp/decomposed.db" --bootstrap 5 >/dev/null
"$bvtool" dynamics --db "$tmp/decomposed.db" >/dev/null
"$bvtool" decompose --db "$tmp/train.db" --split train --criterion grad --bootstrap 0 >/dev/null
"$bvtool" decompose --db "$tmp/train.db" --split oob --criterion teacher --bootstrap 0 >/dev/null

mkdir -p "$src/corpus/fuzz_db"
for db in collected decomposed train; do
	sqlite3 "$tmp/$db.db" "PRAGMA journal_mode=DELETE; PRAGMA page_size=4096; VACUUM;" >/dev/null
	# the checkpoint paths name this temporary directory: make them stable
	sqlite3 "$tmp/$db.db" "UPDATE runs SET checkpoint = replace(checkpoint, '$tmp/', ''); UPDATE config SET value = 'idx:data' WHERE key = 'data'; VACUUM;"
	cp "$tmp/$db.db" "$src/corpus/fuzz_db/$db.db"
done
du -sh "$src/corpus"

#!/bin/bash
# Do two commits give byte-identical results.json and report.html on every shipped design?
#
#   bash scripts/same_outputs.sh BASE_REF [NEW_REF]    (NEW_REF defaults to the working tree)
#
# Each tree's own code runs from that tree (a git worktree for a ref), with the same output
# folder and pseudonym key, so the recorded command and every byte can match. Prints one
# line per file and exits 1 when any differs. Used for refactors that must not change results
# (issue 14's move to one subpackage per method family).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'for w in base new; do git -C "$repo" worktree remove --force "$scratch/$w" >/dev/null 2>&1 || true; done; rm -rf "$scratch"' EXIT
tree_of() {  # REF -> a folder holding that commit's files (the working tree when REF is empty)
  if [ -z "$1" ]; then echo "$repo"; else git -C "$repo" worktree add -q --detach "$scratch/$2" "$1" && echo "$scratch/$2"; fi
}
hashes() {  # TREE -> "design file sha256" lines
  local src=$1
  for d in "$src"/designs/*.yaml; do
    local n; n=$(basename "$d" .yaml)
    rm -rf "$scratch/out/$n"
    (cd "$src" && EVALKIT_PSEUDONYM_KEY=same-outputs-key python -c \
      "import sys; from evalkit.cli import main; sys.argv=['evalkit','run','designs/$n.yaml','--out','$scratch/out/$n']; main()" \
      >/dev/null 2>"$scratch/$n.err") || { echo "$n run failed: $(tail -1 "$scratch/$n.err")"; continue; }
    for f in results.json report.html; do echo "$n $f $(sha256sum < "$scratch/out/$n/$f" | cut -c1-64)"; done
  done
}
base=$(tree_of "$1" base)
new=$(tree_of "${2:-}" new)
hashes "$base" > "$scratch/base.txt"
hashes "$new" > "$scratch/new.txt"
if diff "$scratch/base.txt" "$scratch/new.txt"; then
  echo "byte-identical: $(grep -c -E ' (results.json|report.html) ' "$scratch/new.txt") files over" \
       "$(grep -c ' results.json ' "$scratch/new.txt") designs" \
       "($(grep -c 'run failed' "$scratch/new.txt") failed alike in both, e.g. a design with no data yet)"
else
  exit 1
fi

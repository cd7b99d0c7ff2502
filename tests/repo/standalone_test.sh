#!/usr/bin/env bash
# The repository stands alone: what its sources, tests, tools, scripts and README cite exists in
# the repository itself.
#
#   tests/repo/standalone_test.sh [ROOT]        check the tree at ROOT (default: this checkout)
#   tests/repo/standalone_test.sh --self-test   check that each rule below catches a planted violation
#
# Rules, over every text file git tracks (or would track) under src tests tools bench scripts
# docs .ci and README.md CMakeLists.txt Makefile:
#   1. nothing mentions `shared/docs` (a folder a clone does not have);
#   2. every mention of METHODS.md / DESIGN.md is exactly `docs/METHODS.md` / `docs/DESIGN.md`, and
#      no bare `METHODS §N` / `DESIGN §N` citation is left;
#   3. every `docs/<name>.md` mentioned exists;
#   4. every section cited as `docs/METHODS.md §N` (also `§N.M`, lists `§1.4, §1.5`, ranges `§3–§4`
#      or `§3–4`)
#      is a numbered heading of that file (`## N. Title`, `### N.M Title`).
# Exit 0 when all hold, 1 with one line per violation (file:line: what) otherwise.
set -uo pipefail
export LC_ALL=C  # byte-wise matching: § is the two bytes C2 A7, – is E2 80 93, wherever this runs

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

files_of() {  # text files to check under root $1, one per line, relative to it
  local root=$1
  local scope=(src tests tools bench scripts docs .ci README.md CMakeLists.txt Makefile)
  local list
  if list=$(git -C "$root" ls-files --cached --others --exclude-standard -- "${scope[@]}" 2>/dev/null) &&
     git -C "$root" rev-parse --show-toplevel >/dev/null 2>&1 &&
     [ "$(cd "$root" && pwd -P)" = "$(cd "$(git -C "$root" rev-parse --show-toplevel)" && pwd -P)" ]; then
    :
  else  # not a git checkout (a tarball): every file in scope
    list=$(cd "$root" && for p in "${scope[@]}"; do [ -e "$p" ] && find "$p" -type f; done)
  fi
  while IFS= read -r f; do
    [ "$f" = tests/repo/standalone_test.sh ] && continue  # this checker names every pattern it forbids
    [ -n "$f" ] && [ -f "$root/$f" ] && grep -Iq . "$root/$f" && printf '%s\n' "$f"  # -I: skip binary files
  done <<<"$list"
}

sections_of() {  # numbered headings of markdown file $1: "1", "1.2", ...
  sed -nE 's/^#{2,6}[[:space:]]+([0-9]+(\.[0-9]+)*)\.?([[:space:]].*)?$/\1/p' "$1"
}

check() {
  local root=$1 bad=0 f line text doc nums n tok
  local files
  files=$(files_of "$root")
  if [ -z "$files" ]; then
    echo "standalone: no files to check under $root" >&2
    return 1
  fi
  while IFS= read -r f; do
    # 1. shared/docs
    while IFS=: read -r line text; do
      echo "$f:$line: mentions shared/docs (cite the repository's docs/ instead): $text"
      bad=1
    done < <(grep -n 'shared/docs' "$root/$f")
    # 2. METHODS.md / DESIGN.md only as docs/...; no bare "METHODS §N"
    while IFS=: read -r line text; do
      while IFS= read -r tok; do
        if [ "$tok" != "docs/METHODS.md" ] && [ "$tok" != "docs/DESIGN.md" ]; then
          echo "$f:$line: cites '$tok' (write docs/METHODS.md or docs/DESIGN.md)"
          bad=1
        fi
      done < <(grep -oE '[A-Za-z0-9_./-]*(METHODS|DESIGN)\.md' <<<"$text")
      if grep -qE '(^|[^A-Za-z0-9_./-])(METHODS|DESIGN)[[:space:]]*§' <<<"$text"; then
        echo "$f:$line: bare METHODS/DESIGN § citation (write docs/METHODS.md §N or docs/DESIGN.md §N)"
        bad=1
      fi
    done < <(grep -nE '(METHODS|DESIGN)(\.md|[[:space:]]*§)' "$root/$f")
    # 3. docs/<name>.md exists
    while IFS=: read -r line text; do
      while IFS= read -r tok; do
        if [ ! -f "$root/$tok" ]; then
          echo "$f:$line: cites $tok, which does not exist"
          bad=1
        fi
      done < <(grep -oE '(^|[^A-Za-z0-9_./-])docs/[A-Za-z0-9_-]+\.md' <<<"$text" | sed -E 's/^[^d]//')
    done < <(grep -nE 'docs/[A-Za-z0-9_-]+\.md' "$root/$f")
    # 4. cited sections exist
    while IFS=: read -r line text; do
      while IFS= read -r tok; do
        doc=${tok%%.md*}.md
        [ -f "$root/$doc" ] || continue  # reported by rule 3
        nums=$(sed -E 's/^docs\/[A-Za-z0-9_-]+\.md`?//' <<<"$tok" | grep -oE '[0-9]+(\.[0-9]+)*')
        for n in $nums; do
          if ! sections_of "$root/$doc" | grep -qxF "$n"; then
            echo "$f:$line: cites $doc §$n, which has no section $n"
            bad=1
          fi
        done
      done < <(grep -oE 'docs/[A-Za-z0-9_-]+\.md`?[[:space:]]*§[0-9]+(\.[0-9]+)*(([[:space:]]*,[[:space:]]*§[0-9]+(\.[0-9]+)*)|([[:space:]]*(–|-)[[:space:]]*§?[0-9]+(\.[0-9]+)*))*' <<<"$text")
    done < <(grep -nE 'docs/[A-Za-z0-9_-]+\.md`?[[:space:]]*§' "$root/$f")
  done <<<"$files"
  return $bad
}

self_test() {  # each planted violation must fail, the clean tree must pass
  local tmp rc=0 name
  tmp=$(mktemp -d) || return 1
  trap 'rm -rf "$tmp"' RETURN
  make_tree() {  # $1: dir; a minimal valid tree
    mkdir -p "$1/docs" "$1/src"
    printf '# M\n\n## 0. Notation\n\n## 1. Quantizer\n\n### 1.2 Grids\n\n## 3. QA-LoRA\n\n## 4. IntLoRA\n' >"$1/docs/METHODS.md"
    printf '# D\n\n## 2. Layers\n' >"$1/docs/DESIGN.md"
    printf '// see docs/METHODS.md §1.2 and docs/DESIGN.md §2\n// (`docs/METHODS.md` §3–§4; docs/METHODS.md §0, §1)\n' >"$1/src/a.cpp"
    printf 'The math is `docs/METHODS.md` §3–4.\n' >"$1/README.md"
  }
  make_tree "$tmp/clean"
  if ! out=$(check "$tmp/clean"); then
    echo "self-test: a clean tree failed:"; echo "$out"; rc=1
  fi
  plant() {  # $1: name, $2: file, $3: line to append
    make_tree "$tmp/$1"
    printf '%s\n' "$3" >>"$tmp/$1/$2"
    if out=$(check "$tmp/$1"); then
      echo "self-test: planted '$3' in $2 was not caught"; rc=1
    fi
  }
  plant shared src/a.cpp '// spec: ../shared/docs/METHODS.md §1'
  plant bare src/a.cpp '// spec: METHODS.md §1'
  plant bare_nomd src/a.cpp '// spec: METHODS §1'
  plant design CMakeLists.txt '# (DESIGN.md): modules'
  plant relpath README.md 'see ../docs2/METHODS.md'
  plant nosection src/a.cpp '// docs/METHODS.md §2'
  plant nosub src/a.cpp '// docs/METHODS.md §1.3'
  plant list src/a.cpp '// docs/METHODS.md §1, §7'
  plant range README.md 'see `docs/METHODS.md` §3–§5'
  plant nodoc src/a.cpp '// docs/OTHER.md'
  [ $rc -eq 0 ] && echo "self-test: every planted violation was caught, the clean tree passed"
  return $rc
}

if [ "${1:-}" = "--self-test" ]; then
  self_test
  exit $?
fi
root=${1:-"$(dirname "$self")/../.."}
if out=$(check "$root"); then
  echo "standalone: every doc citation in $(files_of "$root" | wc -l) files resolves inside the repository"
  exit 0
fi
echo "$out"
echo "standalone: fix the citations above (docs live in docs/; sections are the numbered headings)" >&2
exit 1

#!/usr/bin/env bash
# Every relative link of the repository's Markdown (README.md, docs/, results/, ...) names a file
# inside the repository that exists, and every #fragment a heading of it; the check notices a
# link out of the repository, to a missing file or to a missing heading.
# Usage: markdown_links.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR (only SOURCE_DIR is used).
set -euo pipefail
src=$2
check=$src/scripts/check_markdown_links.py
python3 "$check" "$src"

# A tree (no git checkout) with one good link of each kind and one bad link of each kind.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/repo/docs" "$tree/shared"
echo "# Design" > "$tree/shared/DESIGN.md"
cat > "$tree/repo/docs/guide.md" <<'MD'
# Guide

## Memory is measured (`MemoryMeter`)

Setext heading
--------------
MD
cat > "$tree/repo/README.md" <<'MD'
# Read me

Good: [guide](docs/guide.md), [section](docs/guide.md#memory-is-measured-memorymeter),
[setext](docs/guide.md#setext-heading), [here](#read-me), [site](https://example.org/x),
![folder](docs/), `[code](../not/a/link.md)`.

```sh
[also code](../fenced/not/a/link.md)
```

Bad: [design](../shared/DESIGN.md), [missing](docs/missing.md), [anchor](docs/guide.md#nowhere),
[file](file:///etc/passwd).

[ref]: ../shared/DESIGN.md
MD
if out=$(python3 "$check" "$tree/repo" 2>&1); then
  echo "FAIL: bad links passed the check:"; echo "$out"; exit 1
fi
for expected in "README.md:11: link '../shared/DESIGN.md': points outside the repository" \
    "README.md:11: link 'docs/missing.md': no such file" \
    "README.md:11: link 'docs/guide.md#nowhere': docs/guide.md has no heading '#nowhere'" \
    "README.md:12: link 'file:///etc/passwd': only relative links and http(s) links" \
    "README.md:14: link '../shared/DESIGN.md': points outside the repository"; do
  grep -qF "$expected" <<<"$out" || {
    echo "FAIL: the check did not report: $expected"; echo "$out"; exit 1; }
done
if [ "$(grep -c "^README.md:" <<<"$out")" != 5 ]; then
  echo "FAIL: good links were reported:"; echo "$out"; exit 1
fi
echo "markdown links: ok"

#!/usr/bin/env bash
# No two files of one unity target define the same file-scope name (scripts/check_unity_names.py):
# such a pair compiles today only if the files happen to land in different unity batches.
# Usage: unity_names.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR (only SOURCE_DIR is used).
set -euo pipefail
src=$2
python3 "$src/scripts/check_unity_names.py" "$src"
# The check must notice a collision: two files of a scratch tree defining one helper.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/neuroflux/src/a" "$tree/neuroflux/cli" "$tree/tests" "$tree/csrc"
printf 'namespace {\nint helper(int x) { return x; }\n}  // namespace\n' > "$tree/neuroflux/src/a/one.cpp"
printf 'namespace {\nnamespace fs = std::filesystem;\nint helper(int x) { return x; }\n}  // namespace\n' \
  > "$tree/neuroflux/src/a/two.cpp"
printf 'namespace {\nnamespace fs = std::filesystem;\n}  // namespace\n' > "$tree/neuroflux/src/a/three.cpp"
if out=$(python3 "$src/scripts/check_unity_names.py" "$tree"); then
  echo "unity_names: the collision was not reported"; exit 1
fi
echo "$out" | grep -q "'helper' is defined at file scope in neuroflux/src/a/one.cpp, neuroflux/src/a/two.cpp" ||
  { echo "unity_names: wrong report: $out"; exit 1; }
if echo "$out" | grep -q "'fs'"; then echo "unity_names: a repeated namespace alias was reported"; exit 1; fi
echo "unity_names: ok"

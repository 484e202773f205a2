#!/usr/bin/env bash
# `neuroflux --help` and every `neuroflux COMMAND --help` end with examples that parse (their
# options exist, their config files too), and a mistyped command, option or config key is named
# with the closest valid one and exit code 2.
# Usage: cli_help.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export NEUROFLUX_QUIET=1
fail=0
expect() {  # expect CODE PATTERN -- command...
  local code=$1 pattern=$2; shift 3
  "$@" >"$tmp/out" 2>&1; local got=$?
  if [ "$got" != "$code" ] || ! grep -qF -- "$pattern" "$tmp/out"; then
    echo "FAIL: $* -> exit $got (want $code and '$pattern'), output:"; cat "$tmp/out"; fail=1
  else
    echo "ok: exit $got: $(grep -m1 -F -- "$pattern" "$tmp/out")"
  fi
}

# Every example of a help text: its options parse (run with --help appended) and its --config
# file exists. Run from the source directory, as the examples' relative paths assume.
check_examples() {  # check_examples WHAT FILE
  local what=$1 file=$2 count=0
  while read -r line; do
    read -ra words <<<"$line"
    [ "${#words[@]}" -gt 0 ] && [ "${words[0]}" = neuroflux ] || continue
    count=$((count + 1))
    for ((i = 1; i < ${#words[@]}; ++i)); do
      if [ "${words[i]}" = --config ] && [ ! -f "$src/${words[i+1]}" ]; then
        echo "FAIL: $what: example names a missing config: $line"; fail=1
      fi
    done
    if ! (cd "$src" && "$bin" "${words[@]:1}" --help >/dev/null 2>"$tmp/err"); then
      echo "FAIL: $what: example does not parse: $line"; cat "$tmp/err"; fail=1
    fi
  done < <(sed -n '/^Examples:/,/^$/p' "$file")
  if [ "$count" = 0 ]; then
    echo "FAIL: $what: no examples"; cat "$file"; fail=1
  else
    echo "ok: $what: $count examples parse"
  fi
}

"$bin" --help >"$tmp/help" 2>&1 || { echo "FAIL: neuroflux --help exits non-zero"; fail=1; }
commands=$(sed -n '/^Commands:/,/^$/p' "$tmp/help" | awk 'NF > 1 {print $1}')
[ -n "$commands" ] || { echo "FAIL: neuroflux --help lists no commands"; cat "$tmp/help"; fail=1; }
check_examples "neuroflux --help" "$tmp/help"
for command in $commands; do
  grep -q "^  neuroflux $command " "$tmp/help" ||
    { echo "FAIL: neuroflux --help has no example of $command"; fail=1; }
  if ! "$bin" "$command" --help >"$tmp/$command.help" 2>&1; then
    echo "FAIL: neuroflux $command --help exits non-zero"; fail=1
  fi
  check_examples "neuroflux $command --help" "$tmp/$command.help"
done
expect 0 "Examples:" -- "$bin" help train

cfg=$src/configs/quickstart.json
expect 2 "unknown command 'trian'; did you mean 'train'?" -- "$bin" trian --config "$cfg"
expect 2 "unknown command 'evaluate'; did you mean 'eval'?" -- "$bin" evaluate
expect 2 "unknown command 'bench-op'; did you mean 'bench-ops'?" -- "$bin" bench-op
expect 2 "unknown command 'frobnicate'" -- "$bin" frobnicate
if grep -q "did you mean" "$tmp/out"; then echo "FAIL: a far-off command got a suggestion"; fail=1; fi
expect 2 "the command comes first" -- "$bin" --config "$cfg" train
expect 2 "unknown option '--confg'; did you mean '--config'?" -- "$bin" train --confg "$cfg"
expect 2 "unknown option '--confg'; did you mean '--config'?" -- "$bin" plan --confg="$cfg"
expect 2 "unknown option '--methds'; did you mean '--methods'?" -- \
  "$bin" bench --config "$cfg" --methds backprop
expect 2 "unknown option '--repeat'; did you mean '--repeats'?" -- "$bin" bench-ops --repeat 3
expect 2 "unknown option '--world-sise'; did you mean '--world-size'?" -- \
  "$bin" train --config "$cfg" --world-sise 2
expect 2 "unknown option '-q'" -- "$bin" eval -q
expect 2 "/train/epochz: unknown key; did you mean 'epochs'?" -- \
  "$bin" train --config "$cfg" --set train.epochz=3 --out "$tmp/a"
expect 2 "/memory/bugdet: unknown key; did you mean 'budget'?" -- \
  "$bin" train --config "$cfg" --set memory.bugdet=16MiB --out "$tmp/a"
exit $fail

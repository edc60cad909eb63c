#!/bin/bash
# Tests `foldfs fold` through the built binary: fold_cli_test.sh PATH/TO/foldfs
# Non-ASCII names are written as $'\x..' bytes: $'\u....' depends on the locale.
set -u
FOLDFS=${1:?usage: fold_cli_test.sh PATH/TO/foldfs}
failures=0

# expect NAME EXPECTED_STDOUT EXPECTED_STATUS [ARGS...]: runs `foldfs fold ARGS`.
expect() {
  local name=$1 want_out=$2 want_status=$3
  shift 3
  local out status
  out=$("$FOLDFS" fold "$@" 2>/tmp/fold_cli_stderr.$$)
  status=$?
  if [[ "$out" != "$want_out" || $status -ne $want_status ]]; then
    echo "FAIL $name: status $status (want $want_status)"
    echo "  got:  $(printf '%q' "$out")"
    echo "  want: $(printf '%q' "$want_out")"
    failures=$((failures + 1))
  fi
  if [[ $want_status -eq 2 && ! -s /tmp/fold_cli_stderr.$$ ]]; then
    echo "FAIL $name: usage error without a message on stderr"
    failures=$((failures + 1))
  fi
}

# expect_stdin NAME INPUT EXPECTED_STDOUT EXPECTED_STATUS [ARGS...]
expect_stdin() {
  local name=$1 input=$2 want_out=$3 want_status=$4
  shift 4
  local out status
  out=$(printf '%b' "$input" | "$FOLDFS" fold "$@" 2>/dev/null)
  status=$?
  if [[ "$out" != "$want_out" || $status -ne $want_status ]]; then
    echo "FAIL $name: status $status (want $want_status)"
    echo "  got:  $(printf '%q' "$out")"
    echo "  want: $(printf '%q' "$want_out")"
    failures=$((failures + 1))
  fi
}

nl=$'\n'
expect ascii "726561646d652e747874" 0 README.TXT
expect several "61${nl}61${nl}7373" 0 A a ß
expect kelvin "6b" 0 $'\xe2\x84\xaa'
expect nfd_equal "636f726163cca761cc836f${nl}636f726163cca761cc836f" 0 \
  "coração" $'CORAC\xcc\xa7\xc3\xa3O'
expect ignorable "6162" 0 $'a\xe2\x80\x8db'
expect empty_name "" 0 ""
expect empty_between "61${nl}${nl}62" 0 a "" b
expect invalid_lenient "ff41" 0 $'\xffA'
expect invalid_strict "invalid" 0 --strict $'\xffA'
expect strict_valid "e1848be185a1" 0 --strict $'\xec\x95\x84'
expect hex_input "7373" 0 --hex c39f
expect hex_upper "7373" 0 --hex C39F
expect hex_invalid_name "invalid" 0 --hex --strict c0af
expect hex_invalid_lenient "c0af" 0 --hex c0af
expect hex_empty "" 0 --hex ""
expect options_after_names "7373${nl}invalid" 0 --hex c39f --strict ff
expect double_dash "2d2d737472696374" 0 -- --strict
expect dash_name "2d" 0 -
expect bad_hex_odd "" 2 --hex abc
expect bad_hex_digit "" 2 --hex zz
expect bad_hex_prints_nothing "" 2 --hex 41 zz
expect unknown_option "" 2 --frobnicate A

expect_stdin stdin_lines "A\nB\n" "61${nl}62" 0
expect_stdin stdin_no_final_newline "A\nB" "61${nl}62" 0
expect_stdin stdin_empty_line "A\n\nB\n" "61${nl}${nl}62" 0
expect_stdin stdin_strict "ok\n\xff\n" "6f6b${nl}invalid" 0 --strict
expect_stdin stdin_hex "c39f\n41\n" "7373${nl}61" 0 --hex
expect_stdin stdin_bad_hex "41\nxyz\n42\n" "61" 2 --hex
expect_stdin stdin_nothing "" "" 0

# The help goes to stdout and succeeds.
if ! "$FOLDFS" fold --help | grep -q "usage: foldfs fold"; then
  echo "FAIL help"
  failures=$((failures + 1))
fi

rm -f /tmp/fold_cli_stderr.$$
if ((failures)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "all foldfs fold checks passed"

# Sorna's bash driver: one long-lived shell, so variables, functions and the current
# folder stay from run to run; driven by the runner over fds 3 (runs in) and 4 (their
# ends out); see "Runner <-> driver" in docs/PROTOCOL.md. An interrupt returns from the
# run (the INT trap's `return`), and the shell goes on.
sorna_emit() {  # kind, then fields; lengths in bytes
  local LC_ALL=C kind=$1 header=$1 field
  shift
  for field in "$@"; do header+=" ${#field}"; done
  printf '%s\n' "$header" >&4
  for field in "$@"; do printf '%s' "$field" >&4; done
}

sorna_complete() {  # between runs: what bash's own compgen finds
  local token=$1
  if [[ $token == \$* ]]; then
    compgen -v -- "${token#\$}" | grep -v '^sorna_' | sed 's/^/$/'
  elif [[ $token == */* ]]; then
    compgen -f -- "$token"
  else
    compgen -A function -A variable -A builtin -A alias -A keyword -A command -- "$token" \
      | grep -v '^sorna_'
    compgen -f -- "$token"
  fi | sort -u | head -n 500
}

sorna_inspect() {  # between runs: a variable's declaration, what a name is
  local token=$1
  if [[ $token == \$* ]]; then
    declare -p -- "${token#\$}"
  else
    type -a -- "$token" | head -n 50
  fi
}

sorna_run() {
  trap 'return 130' INT
  eval "$1"
}

while IFS=' ' read -r sorna_kind sorna_size <&3; do
  sorna_code=""
  if (( sorna_size > 0 )); then
    sorna_code=$(head -c "$sorna_size" <&3; printf x)
    sorna_code=${sorna_code%x}
  fi
  if [[ $sorna_kind == complete ]]; then
    sorna_emit matches "$(sorna_complete "$sorna_code" 2>/dev/null)"
    continue
  elif [[ $sorna_kind == inspect ]]; then
    sorna_emit found "$(sorna_inspect "$sorna_code" 2>/dev/null)"
    continue
  fi
  if ! bash -n <<<"$sorna_code" 2>/dev/null; then
    sorna_error=$(bash -n <<<"$sorna_code" 2>&1)
    sorna_emit error SyntaxError "${sorna_error#bash: }" "$sorna_error" 1
  else
    sorna_run "$sorna_code"
    sorna_status=$?
    trap - INT
    if (( sorna_status == 130 )); then
      sorna_emit error Interrupt "" "interrupted" 0
    elif (( sorna_status != 0 )); then
      sorna_emit error ExitStatus "$sorna_status" "the code ended with status $sorna_status" 0
    fi
  fi
  sorna_emit done
done

# Sourced by tests/run and by the tests that drive a terminal (test_repl.sh,
# test_secrets.sh). rd_terminal_probe finds out once whether tmux and script
# can open a terminal here and exports the answer, so a suite run without a
# usable terminal skips those cases at once, each counted with its reason,
# instead of waiting for screens that never come:
#   RD_TMUX_WHY    empty when tmux works, else why it cannot be used
#   RD_SCRIPT_WHY  the same for script(1)
# A second call (tests/run probed already, the files inherit) does nothing.
rd_terminal_probe() {
  [ -n "${RD_TERMINAL_PROBED:-}" ] && return 0
  export RD_TERMINAL_PROBED=1 RD_TMUX_WHY= RD_SCRIPT_WHY=
  local sock=rd-probe-$$-$RANDOM
  if ! command -v tmux >/dev/null 2>&1; then
    RD_TMUX_WHY="tmux is not installed: apt-get install tmux"
  elif tmux -L "$sock" new-session -d -s probe -x 80 -y 24 "sleep 60" >/dev/null 2>&1; then
    tmux -L "$sock" kill-server >/dev/null 2>&1
  else
    RD_TMUX_WHY="tmux cannot open a terminal here"
  fi
  if ! command -v script >/dev/null 2>&1; then
    RD_SCRIPT_WHY="script is not installed: apt-get install bsdutils"
  elif ! script -qfc true /dev/null </dev/null >/dev/null 2>&1; then
    RD_SCRIPT_WHY="script cannot open a terminal here"
  fi
}
rd_terminal_probe

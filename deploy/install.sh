#!/usr/bin/env bash
# Installs sensor-ingest as a systemd service, from a checkout of this repo:
#   sudo deploy/install.sh
# Creates the system user and directories, copies the built app to
# /opt/sensor-ingest with production dependencies, installs the unit and
# (once) the settings file, then starts or restarts the service.
# Safe to run again, e.g. to upgrade: it never overwrites the settings file.
#
# For tests and packaging, these may be set:
#   ROOT=/some/dir      install under that directory instead of /
#   SERVICE_USER=name   run as that user (default sensor-ingest)
#   SYSTEMCTL=cmd       command used instead of systemctl ("true" skips it)
set -euo pipefail

ROOT="${ROOT:-}"
SERVICE_USER="${SERVICE_USER:-sensor-ingest}"
SYSTEMCTL="${SYSTEMCTL:-systemctl}"
SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
APP_DIR="$ROOT/opt/sensor-ingest"
DATA_DIR="$ROOT/var/lib/sensor-ingest"
LOG_DIR="$ROOT/var/log/sensor-ingest"
CONF_DIR="$ROOT/etc/sensor-ingest"
UNIT_DIR="$ROOT/etc/systemd/system"

say() { printf 'install: %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { say "run as root (sudo $0)"; exit 1; }
NODE="$(command -v node)" || { say "node is not installed (Node.js 20, 22 or 24)"; exit 1; }
# Supported: Node.js 20, 22 and 24 (the LTS lines; package.json "engines").
NODE_MAJOR="$("$NODE" -p 'process.versions.node.split(".")[0]')"
case "$NODE_MAJOR" in
  20 | 22 | 24) ;;
  *)
    [ "$NODE_MAJOR" -gt 24 ] 2>/dev/null \
      || { say "Node.js 20, 22 or 24 is needed, found $("$NODE" --version)"; exit 1; }
    say "warning: Node.js $("$NODE" --version) is newer than the tested 20, 22 and 24"
    ;;
esac

if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  say "creating system user $SERVICE_USER"
  useradd --system --user-group --home-dir /var/lib/sensor-ingest --no-create-home \
    --shell /usr/sbin/nologin "$SERVICE_USER"
fi
GROUP="$(id -gn "$SERVICE_USER")"

say "building in $SOURCE"
# --include=dev: the build needs TypeScript even under NODE_ENV=production or omit=dev.
# --prefer-offline: packages already in npm's cache (an upgrade, or the second
# install below) are taken from it without asking the registry again; the
# lockfile's integrity hashes still check every one.
(cd "$SOURCE" && npm ci --include=dev --prefer-offline --no-audit --no-fund && npm run build)

say "installing the app in $APP_DIR"
install -d -m 0755 "$APP_DIR"
rm -rf "$APP_DIR/dist" "$APP_DIR/src"
cp -R "$SOURCE/dist" "$SOURCE/package.json" "$SOURCE/package-lock.json" "$SOURCE/README.md" "$APP_DIR/"
# The dashboard's page, script and styles are not compiled: dist/ingest/dashboard/ finds them at ../../../src/ingest/dashboard/public/.
install -d -m 0755 "$APP_DIR/src/ingest/dashboard"
cp -R "$SOURCE/src/ingest/dashboard/public" "$APP_DIR/src/ingest/dashboard/"
(cd "$APP_DIR" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --ignore-scripts)

install -d -m 0750 -o "$SERVICE_USER" -g "$GROUP" "$DATA_DIR" "$LOG_DIR"
install -d -m 0750 -o root -g "$GROUP" "$CONF_DIR"
if [ -e "$CONF_DIR/sensor-ingest.env" ]; then
  say "keeping the existing $CONF_DIR/sensor-ingest.env"
else
  install -m 0640 -o root -g "$GROUP" "$SOURCE/deploy/sensor-ingest.env" "$CONF_DIR/sensor-ingest.env"
  say "wrote $CONF_DIR/sensor-ingest.env: set INGEST_TOKEN and READ_TOKEN there"
fi

install -d -m 0755 "$UNIT_DIR"
sed -e "s#^ExecStart=/usr/bin/node #ExecStart=$NODE #" \
    -e "s#^User=.*#User=$SERVICE_USER#" -e "s#^Group=.*#Group=$GROUP#" \
    "$SOURCE/deploy/sensor-ingest.service" > "$UNIT_DIR/sensor-ingest.service.new"
chmod 0644 "$UNIT_DIR/sensor-ingest.service.new"
mv "$UNIT_DIR/sensor-ingest.service.new" "$UNIT_DIR/sensor-ingest.service"

"$SYSTEMCTL" daemon-reload
"$SYSTEMCTL" enable sensor-ingest.service
"$SYSTEMCTL" restart sensor-ingest.service
say "done: systemctl status sensor-ingest; logs in $LOG_DIR and journalctl -u sensor-ingest"

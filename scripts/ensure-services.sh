#!/usr/bin/env bash
# Start the local PostgreSQL and Redis the integration tests talk to, when they are down.
# Best effort: a service that cannot be started is reported, and the tests that need it
# then fail under CI=true (or skip elsewhere) with the reason.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  else
    echo "PostgreSQL is not running and pg_ctlcluster is not available" >&2
  fi
fi

if ! port_open 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  else
    echo "Redis is not running and redis-server is not installed" >&2
  fi
fi

for _ in $(seq 1 30); do
  port_open 5432 && port_open 6379 && exit 0
  sleep 0.5
done
exit 0

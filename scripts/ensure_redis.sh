#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:6379: start one if none answers, install it if missing.
set -euo pipefail
ping_redis() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
  else
    python3 - <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
  fi
}
if ping_redis; then echo "redis: answering on 127.0.0.1:6379"; exit 0; fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: installing redis-server with apt"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
mkdir -p /tmp/lsml-redis
redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
  --dir /tmp/lsml-redis --logfile /tmp/lsml-redis/redis.log
for _ in $(seq 1 50); do ping_redis && { echo "redis: started on 127.0.0.1:6379"; exit 0; }; sleep 0.1; done
echo "ERROR: redis-server did not answer on 127.0.0.1:6379; see /tmp/lsml-redis/redis.log" >&2
exit 1

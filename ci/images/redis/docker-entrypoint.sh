#!/bin/bash
# Entrypoint of the locally built Redis image: Redis in the foreground on
# every interface, no persistence (a cache), as the official image runs.
#
#   REDIS_PORT       6379
#   REDIS_MAXMEMORY  0 (no limit); with a limit, least recently used keys go
set -Eeuo pipefail
exec redis-server \
	--bind 0.0.0.0 \
	--port "${REDIS_PORT:-6379}" \
	--protected-mode no \
	--save '' \
	--appendonly no \
	--maxmemory "${REDIS_MAXMEMORY:-0}" \
	--maxmemory-policy allkeys-lru \
	"$@"

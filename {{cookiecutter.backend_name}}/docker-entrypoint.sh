#!/bin/sh
# The image's entrypoint: make the ./data and ./logs mounts writable, then run the command
# (supervisord) as an unprivileged user: the uid that owns ./data on the host (your checkout's
# owner), or uid 1000 ("app") when that is root. So the container neither crash-loops on a
# checkout owned by someone else nor leaves root-owned files in it.
#   - started with `user:` / `docker run --user`: runs the command as that user, as is;
#   - rootless Podman / user namespaces: "root" here is your own user outside; stays root.
set -eu

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi
# the first line of uid_map is "0 0 4294967295" unless we are in a user namespace
map=$(head -n 1 /proc/self/uid_map | tr -s ' \t' ' ' | sed 's/^ //')
mkdir -p /data/models /app/logs
if [ "$map" != "0 0 4294967295" ]; then
    exec "$@"
fi

uid=$(stat -c %u /data)
gid=$(stat -c %g /data)
if [ "$uid" = 0 ]; then
    uid=1000
    gid=1000
fi
# hand whatever is not the user's yet to it (a fresh checkout: only the two directories)
for dir in /data /app/logs; do
    find "$dir" ! -user "$uid" -exec chown "$uid:$gid" {} +
done
# supervisord opens /dev/stdout and /dev/stderr again (the engine's log pipes, root's so far)
# (no 2>/dev/null here: sh would apply it to its own fd 2 while chown runs)
chown "$uid:$gid" "/proc/$$/fd/1" "/proc/$$/fd/2" || true
if [ "$uid" != 1000 ]; then
    export HOME=/tmp # no home directory for a uid the image does not know
fi
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"

#!/bin/sh
# after_commit hook (deploy.yaml): get the running MCP server onto the release MCP Deploy just made live.
#
# Under systemd --user, name the unit:   MCP_SERVER_UNIT=unified-agents.service sh .../restart-server.sh
#   it is restarted, and the hook fails (reported; the release stays) unless the unit comes back active.
# Launched by Claude Desktop or Claude Code, the server is a child of the client, talking over pipes only
#   the client holds: only the client can start it again. This names the processes still running the old
#   release and says what to do; it never kills them (a killed server just shows as failed in the client).
set -eu

if [ -n "${MCP_SERVER_UNIT:-}" ]; then
    systemctl --user restart "$MCP_SERVER_UNIT"
    systemctl --user is-active --quiet "$MCP_SERVER_UNIT"
    echo "restarted $MCP_SERVER_UNIT: it now runs $MCP_DEPLOY_VERSION"
    exit 0
fi

session() { sed 's/.*) //' "$1/stat" 2>/dev/null | cut -d' ' -f4; }  # field 6 of /proc/PID/stat
target=$(cd "$MCP_DEPLOY_TARGET" && pwd -P)
ours=$(session /proc/$$)  # MCP Deploy starts each hook in a session of its own, in production: skip it
cd /
found=0
for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$(session "$proc")" = "$ours" ] && continue
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    args=$(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null) || continue
    case "$cwd/ $args " in
        "$target"/*|*" $target/"*|*" $target "*)
            echo "pid $pid ($(cat "$proc/comm" 2>/dev/null || echo ?)) still runs the release before $MCP_DEPLOY_VERSION"
            found=1 ;;
    esac
done
if [ "$found" = 0 ]; then
    echo "no running process uses $MCP_DEPLOY_TARGET: the next launch loads $MCP_DEPLOY_VERSION"
    exit 0
fi
echo "to load $MCP_DEPLOY_VERSION: Claude Desktop: quit it completely (not just its window) and open it again;"
echo "Claude Code: run /mcp, pick the server and reconnect it (or start a new session)"

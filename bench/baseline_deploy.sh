#!/bin/sh
# The baseline of the deploy benchmark: the steps a deploy cannot skip, and nothing
# else (no validation, lock, ledger, notification or rollback on failure).
#
#   baseline_deploy.sh ROOT REPO SHA SUPERVISORCTL CONF PROGRAM URL TEXT
#
# 1. export the commit into ROOT/releases/SHA if it is missing (git archive | tar),
# 2. switch ROOT/current atomically (ln -sfn + mv -T),
# 3. supervisorctl restart PROGRAM,
# 4. poll URL every 0.1 s until its body contains TEXT (curl).
# Prints "restart <epoch>" and "ready <epoch>" so the caller can split the time.
set -eu
root=$1 repo=$2 sha=$3 ctl=$4 conf=$5 program=$6 url=$7 text=$8

if [ ! -d "$root/releases/$sha" ]; then
    tmp="$root/releases/.$sha.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp"
    git -C "$repo" archive "$sha" | tar -x -C "$tmp"
    mv "$tmp" "$root/releases/$sha"
fi
ln -sfn "releases/$sha" "$root/current.new"
mv -T "$root/current.new" "$root/current"

echo "restart $(date +%s.%N)"
"$ctl" -c "$conf" restart "$program" >/dev/null
tries=0
until curl -fs --max-time 2 "$url" 2>/dev/null | grep -q "$text"; do
    tries=$((tries + 1))
    [ "$tries" -lt 600 ] || { echo "not ready after 60 s" >&2; exit 1; }
    sleep 0.1
done
echo "ready $(date +%s.%N)"

#!/usr/bin/env bash
# run.sh — what `make run` does after building: create the embedded database
# with demo content if it is absent, print an editor token and a dashboard
# link (an admin token in its fragment, which browsers never send to the
# server) for the demo site, and serve in the foreground (Ctrl-C stops it
# gracefully).
set -euo pipefail
db="$1"
listen="$2"
bin=build/strata

mkdir -p "$(dirname "$db")"
if [ ! -f "$db" ]; then
  "$bin" seed --db "$db" --items 300
fi
token=$("$bin" token create --db "$db" --site main --role write --name demo-editor)
admin=$("$bin" token create --db "$db" --site main --role admin --name demo-operator)
cat <<MSG

  strata is starting on http://$listen
  database:      $db
  editor token:  $token   (site main, role write)
  dashboard:     http://$listen/dashboard#token=$admin

  try:  curl http://$listen/v1/main/content?limit=3
        curl -H "Authorization: Bearer $token" http://$listen/v1/main/content?status=draft
        curl -H "Authorization: Bearer $token" http://$listen/v1/main/content/1/versions
        curl http://$listen/metrics

MSG
exec "$bin" serve --db "$db" --listen "$listen"

# `helm test`: write a room through the Service with ysync's y-websocket client, then read
# it back (a new connection, maybe to another pod) until the edit is there.
# Environment: HELM_TEST_URL (ws://service:port/prefix), HELM_TEST_ROOM, and with
# HS256 auth YSYNC_JWT_SECRET (+ YSYNC_JWT_AUDIENCE / YSYNC_JWT_ISSUER from the ConfigMap).
set -eu
room="$HELM_TEST_ROOM"
set --
if [ -n "${YSYNC_JWT_SECRET:-}" ]; then
    token=$(python -c '
import os, time, jwt
claims = {"sub": "helm-test", "exp": int(time.time()) + 300, "rooms": {os.environ["HELM_TEST_ROOM"]: "editor"}}
for claim, variable in (("aud", "YSYNC_JWT_AUDIENCE"), ("iss", "YSYNC_JWT_ISSUER")):
    if os.environ.get(variable):
        claims[claim] = os.environ[variable]
print(jwt.encode(claims, os.environ["YSYNC_JWT_SECRET"], algorithm="HS256"))
')
    set -- --token "$token"
fi
echo "{\"probe\": \"$room\"}" | ysync doc put "$room" - --url "$HELM_TEST_URL" "$@"
attempt=0
until ysync doc get "$room" --url "$HELM_TEST_URL" "$@" | grep -q "\"probe\": \"$room\""; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 10 ]; then
        echo "the edit did not come back from $HELM_TEST_URL" >&2
        exit 1
    fi
    sleep 1
done
echo "synced room $room through $HELM_TEST_URL"

#!/bin/sh
# One-shot setup of the application's own RabbitMQ vhost and least-privilege user, through the
# management HTTP API, run by docker-compose.yml's `rabbitmq-setup` before anything connects.
# Idempotent: PUTs create or update.
#
# The app user may configure, write and read only inside its vhost and has no management tags,
# so it cannot log into the management UI or touch anything else. The admin user (the image's
# RABBITMQ_DEFAULT_USER) is for people; because it is set, the image creates no `guest` user.
set -eu

: "${RABBITMQ_ADMIN_USER:?}" "${RABBITMQ_ADMIN_PASSWORD:?}"
: "${RABBITMQ_APP_USER:?}" "${RABBITMQ_APP_PASSWORD:?}"
VHOST="${RABBITMQ_VHOST:-coursewise}"
API="${RABBITMQ_API:-http://rabbitmq:15672/api}"

put() {
    curl --fail-with-body --silent --show-error \
        --user "$RABBITMQ_ADMIN_USER:$RABBITMQ_ADMIN_PASSWORD" \
        --header "content-type: application/json" --request PUT --data "$2" "$API$1"
    echo " PUT $1"
}

put "/vhosts/$VHOST" '{"description": "Coursewise"}'
put "/users/$RABBITMQ_APP_USER" "{\"password\": \"$RABBITMQ_APP_PASSWORD\", \"tags\": \"\"}"
put "/permissions/$VHOST/$RABBITMQ_APP_USER" '{"configure": ".*", "write": ".*", "read": ".*"}'
echo "rabbitmq: vhost $VHOST and user $RABBITMQ_APP_USER ready"

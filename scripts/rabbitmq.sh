#!/usr/bin/env bash
# A throwaway RabbitMQ (Debian's rabbitmq-server) kept inside one folder, on free loopback
# ports; for tests and the cluster test.
#   scripts/rabbitmq.sh start DIR [PORT]   start (or start again, same ports) and wait for AMQP;
#                                          prints the AMQP port
#   scripts/rabbitmq.sh stop DIR           stop it (data stays in DIR for a restart)
set -euo pipefail
cmd=$1 dir=$2
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
mkdir -p "$dir"
[ -f "$dir/ports" ] || echo "${3:-$(free_port)} $(free_port)" >"$dir/ports"
read -r amqp_port dist_port <"$dir/ports"
name="fh$(echo "$dir" | sha256sum | cut -c1-10)"
export RABBITMQ_NODENAME="$name@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT="$amqp_port" RABBITMQ_DIST_PORT="$dist_port" \
  RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PID_FILE="$dir/rabbit.pid" \
  ERL_EPMD_ADDRESS=127.0.0.1
case "$cmd" in
  start)
    mkdir -p "$dir/mnesia" "$dir/log"
    echo '[].' >"$dir/enabled_plugins"
    # Debian's wrapper drops to the rabbitmq user, which must own its folders and be able
    # to reach them through the (private) temp dirs above.
    if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
      chown -R rabbitmq "$dir"
      up=$(dirname "$dir")
      while [ "$up" != / ] && [ -O "$up" ]; do chmod o+x "$up"; up=$(dirname "$up"); done
    fi
    setsid rabbitmq-server >"$dir/log/stdout.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 300); do
      if python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(0.2); s.connect(("127.0.0.1",int(sys.argv[1])))' "$amqp_port" 2>/dev/null; then
        echo "$amqp_port"; exit 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    tail -n 30 "$dir/log/stdout.log" >&2
    echo "RabbitMQ did not accept AMQP" >&2
    exit 1
    ;;
  stop)
    rabbitmqctl -q stop "$dir/rabbit.pid" >/dev/null 2>&1 || rabbitmqctl -q stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

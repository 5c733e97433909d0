#!/usr/bin/env bash
# A real single-node Slurm cluster (with accounting: MariaDB + slurmdbd) on loopback, for tests.
#
#   tests/slurm/cluster.sh start    # install what is missing (apt, root), start what is not running
#   tests/slurm/cluster.sh stop [NAME...]   # stop the daemons this script started (or only NAMEs)
#
# Idempotent: `start` twice starts nothing new; `start` prints "started: NAME..." listing only the
# daemons that this call started, so a caller can stop exactly those. State, spool, logs and the
# accounting database live in $CORREMBED_SLURM_DIR (default /tmp/corrembed-slurm), the daemons use
# non-default ports; the configuration must be /etc/slurm/{slurm,gres,slurmdbd}.conf, because
# the Slurm executor's job step drops SLURM_CONF before its nested srun. A slurm.conf that this
# script did not write is never overwritten (it stops with an error instead). Facts this relies on
# (Slurm 22.05 from Debian): there is no systemd, so daemons run in the foreground under setsid,
# and their pids are recorded in $STATE/pids; a fake GPU GRES (File=/dev/null) lets jobs that ask
# for --gpus=1 be scheduled.
set -euo pipefail

STATE=${CORREMBED_SLURM_DIR:-/tmp/corrembed-slurm}
CLUSTER=corrembed
ACCOUNT=corrembed_ci
CTLD_PORT=16817
SLURMD_PORT=16818
DBD_PORT=16819
DB_PORT=16820
DB_PASS=corrembed-slurm-ci
ETC=/etc/slurm
CONF=$ETC/slurm.conf
MARKER="# Written by tests/slurm/cluster.sh"
PACKAGES=(slurm-wlm munge mariadb-server slurmdbd)

log() { echo "[slurm-cluster] $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Wait until "$@" succeeds, at most $timeout seconds.
wait_for() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [[ -f $STATE/pids/$what.pid ]] && ! alive "$what"; then
            # /proc/PID/cmdline reads empty while setsid execs the daemon: look again first.
            sleep 1
            alive "$what" || die "$what exited: $(tail -n 5 "$STATE/log/$what".* 2>/dev/null)"
        fi
        ((SECONDS < deadline)) || die "$what not ready after ${timeout}s (logs in $STATE/log)"
        sleep 0.5
    done
}

alive() { # alive NAME: its recorded pid runs the expected program
    local pidfile=$STATE/pids/$1.pid pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -d /proc/$pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$1"
}

launch() { # launch NAME COMMAND...: start in the background in its own session, record the pid
    local name=$1
    shift
    setsid "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name.pid"
    STARTED+=("$name")
}

install_packages() {
    local missing=0 tool
    for tool in slurmctld slurmd slurmdbd sacctmgr munged mariadbd mariadb-install-db; do
        command -v "$tool" >/dev/null 2>&1 || missing=1
    done
    ((missing)) || return 0
    [[ $(id -u) == 0 ]] || die "Slurm is not installed; run as root to apt-get install ${PACKAGES[*]}"
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a munged (ours or the host's) already answers
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    # setpriv execs (the recorded pid is munged's own), as user munge like a packaged service.
    launch munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    wait_for 20 munged bash -c 'munge -n | unmunge'
}

start_mariadb() {
    alive mariadbd && return 0
    local datadir=$STATE/mysql
    if [[ ! -d $datadir/mysql ]]; then
        mkdir -p "$datadir"
        chown mysql:mysql "$datadir"
        mariadb-install-db --no-defaults --user=mysql --datadir="$datadir" \
            --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.out" 2>&1
    fi
    launch mariadbd mariadbd --no-defaults --user=mysql --datadir="$datadir" \
        --socket="$datadir/mysqld.sock" --pid-file="$datadir/mysqld.pid" \
        --bind-address=127.0.0.1 --port=$DB_PORT --skip-name-resolve \
        --innodb-buffer-pool-size=64M --log-error="$datadir/mariadbd.err"
    wait_for 60 mariadbd mariadb --no-defaults --socket="$datadir/mysqld.sock" -uroot -e 'select 1'
    mariadb --no-defaults --socket="$datadir/mysqld.sock" -uroot <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

write_configs() {
    local node cpus memory
    node=$(hostname -s)
    # The node line as slurmd measures it (RealMemory must not exceed the measured figure).
    read -r cpus memory < <(slurmd -C | awk '/^NodeName/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        print v["CPUs"], v["RealMemory"] }')
    if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script: not touching a real cluster's setup"
    fi
    mkdir -p "$ETC" "$STATE/spool/ctld" "$STATE/spool/d"
    cat >"$CONF" <<CONF
$MARKER: a single-node test cluster on loopback.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
MpiDefault=none
SchedulerType=sched/backfill
# Finished jobs stay visible to squeue for a while (the plugin's fallback status command).
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# Keep each job's --comment (the plugin puts rule and wildcards there) in sacct.
AccountingStoreFlags=job_comment
# sacct shows the GPUs each job was given (AllocTRES gres/gpu=N).
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
# A fake GPU: jobs asking for --gpus=1 are scheduled (they see CUDA_VISIBLE_DEVICES=0, no GPU).
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    # Without File= the node would be INVAL.
    echo "NodeName=$node Name=gpu File=/dev/null" >"$ETC/gres.conf"
    cat >"$ETC/slurmdbd.conf" <<CONF
$MARKER
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
AuthType=auth/munge
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
CONF
    chmod 600 "$ETC/slurmdbd.conf" # slurmdbd refuses a readable file holding a password
}

register_accounting() {
    sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" ||
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT" ||
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
            Description="CorrEmbed CI" Organization=corrembed >/dev/null
    sacctmgr -n -P show assoc where user=root account="$ACCOUNT" format=user | grep -qx root ||
        sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
}

node_ready() {
    local state
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
    [[ $state == idle* || $state == mixed* || $state == allocated* ]]
}

start() {
    install_packages
    mkdir -p "$STATE/pids" "$STATE/log"
    STARTED=()
    start_munge
    start_mariadb
    write_configs
    if ! alive slurmdbd; then
        launch slurmdbd slurmdbd -D
    fi
    wait_for 60 slurmdbd sacctmgr -n show cluster
    register_accounting
    if ! alive slurmctld; then
        launch slurmctld slurmctld -D -f "$CONF"
    fi
    if ! alive slurmd; then
        launch slurmd slurmd -D -f "$CONF"
    fi
    wait_for 60 slurmctld scontrol ping
    local deadline=$((SECONDS + 60))
    until node_ready; do
        # A node left down or drained by an earlier run comes back.
        scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        ((SECONDS < deadline)) || die "node not idle: $(sinfo -N -l 2>&1)"
        sleep 0.5
    done
    log "cluster $CLUSTER ready ($CONF, account $ACCOUNT, state in $STATE)"
    echo "started: ${STARTED[*]}"
}

stop() {
    local names=("$@") name pid
    ((${#names[@]})) || names=(slurmd slurmctld slurmdbd mariadbd munged)
    for name in "${names[@]}"; do
        alive "$name" || {
            rm -f "$STATE/pids/$name.pid"
            continue
        }
        pid=$(<"$STATE/pids/$name.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 40); do
            [[ -d /proc/$pid ]] || break
            sleep 0.25
        done
        [[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null
        rm -f "$STATE/pids/$name.pid"
        log "stopped $name ($pid)"
    done
    # With no slurmctld left, a slurm.conf makes every Slurm client (and so every snakemake
    # start, whose Slurm executor plugin asks `scontrol show config`) wait ~10 s for it: remove
    # the configuration this script wrote; `start` writes it again.
    if ! grep -qx slurmctld /proc/[0-9]*/comm 2>/dev/null && [[ -f $CONF ]] && grep -qF "$MARKER" "$CONF"; then
        rm -f "$CONF" "$ETC/gres.conf" "$ETC/slurmdbd.conf"
    fi
}

case ${1:-} in
start) start ;;
stop)
    shift
    stop "$@"
    ;;
*) die "usage: $0 start | stop [NAME...]" ;;
esac

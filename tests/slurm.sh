# Sourced by tests/run.sh: starts a private single-node Slurm cluster for
# the orchestrator tests and exports SLURM_CONF (sbatch, scontrol and
# scancel read it). Installs Debian's slurmctld, slurmd, slurm-client and
# munge when missing. Everything (munge's socket and key, Slurm's state,
# spool, logs and pid files) lives in a fresh temporary folder; the daemons
# listen on 127.0.0.1 only, and stop_slurm stops them and removes it.

slurm_ctld_port="${WEFT_TEST_SLURMCTLD_PORT:-54331}"
slurm_d_port="${WEFT_TEST_SLURMD_PORT:-54332}"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "installing Slurm and munge (Debian's slurmctld, slurmd, slurm-client and munge)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

slurm_dir="$(mktemp -d /tmp/weft-slurm.XXXXXX)"
chmod 755 "$slurm_dir"
mkdir -p "$slurm_dir/munge" "$slurm_dir/state" "$slurm_dir/spool"

# munge authenticates sbatch to slurmctld and slurmctld to slurmd. It
# refuses to run as root, so it runs as the munge user the package creates,
# with its own key and socket (the socket's folder must be reachable by
# every user).
if [ "$(id -u)" -eq 0 ] && ! id munge >/dev/null 2>&1; then
    useradd --system --no-create-home munge
fi
dd if=/dev/urandom of="$slurm_dir/munge/munge.key" bs=1024 count=1 status=none
chmod 755 "$slurm_dir/munge"
chmod 400 "$slurm_dir/munge/munge.key"
as_munge() {
    if [ "$(id -u)" -eq 0 ]; then
        chown -R munge: "$slurm_dir/munge"
        runuser -u munge -- "$@"
    else
        "$@"
    fi
}
as_munge munged --key-file="$slurm_dir/munge/munge.key" \
    --socket="$slurm_dir/munge/munge.socket" \
    --pid-file="$slurm_dir/munge/munged.pid" \
    --log-file="$slurm_dir/munge/munged.log" \
    --seed-file="$slurm_dir/munge/munged.seed"

cat >"$slurm_dir/slurm.conf" <<EOF
ClusterName=weft-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$slurm_ctld_port
SlurmdPort=$slurm_d_port
SlurmUser=$(id -un)
AuthType=auth/munge
CryptoType=crypto/munge
AuthInfo=socket=$slurm_dir/munge/munge.socket
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/slurmctld.pid
SlurmdPidFile=$slurm_dir/slurmd.pid
SlurmctldLogFile=$slurm_dir/slurmctld.log
SlurmdLogFile=$slurm_dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge=600
# The node offers more CPUs than the machine has, so that the tests' jobs
# (which mostly wait) run side by side.
SlurmdParameters=config_overrides
NodeName=localhost NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=16 RealMemory=16384
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$slurm_dir/slurm.conf"

stop_slurm() {
    for pidfile in "$slurm_dir/slurmd.pid" "$slurm_dir/slurmctld.pid" "$slurm_dir/munge/munged.pid"; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 0.2
    rm -rf "$slurm_dir"
}

slurmctld -i
slurmd -N localhost
slurm_up() {
    timeout 2 sinfo -h -o '%t' 2>/dev/null | grep -qx idle
}
for _ in $(seq 1 100); do
    slurm_up && break
    sleep 0.1
done
if ! slurm_up; then
    echo "the Slurm test cluster did not start:" >&2
    cat "$slurm_dir/slurmctld.log" "$slurm_dir/slurmd.log" "$slurm_dir/munge/munged.log" >&2 2>/dev/null || true
    stop_slurm
    return 1
fi
echo "Slurm for the tests: SLURM_CONF=$SLURM_CONF (one node, 16 CPUs)" >&2

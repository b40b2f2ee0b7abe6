# A real single-node Slurm for one test: munged, slurmctld and slurmd on this
# host, as root, everything they write (key, sockets, state, spool, pid files,
# logs, slurm.conf) in one temporary directory, on ports nobody else listens on.
# Nothing in /etc, /run or /var is touched, so a system munge or Slurm, if any,
# is neither used nor disturbed.
#   . tests/slurm_lib.sh
#   slurm_need                  exit 77 (ctest's skip) with the reason when this
#                               machine cannot run it; under CI a failure instead
#   slurm_start DIR             start all three, wait until the node is idle;
#                               installs the traps that run slurm_stop on exit;
#                               $slurm_home: DIR, or a shorter one (see below)
#   slurm_wait_all SECONDS      wait until every job has ended (or can never
#                               start); 0 when all of them COMPLETED
#   slurm_jobs                  the jobs: id, name, state, reason
#   slurm_logs                  the daemons' last log lines, to stderr
#   slurm_stop                  cancel the jobs, stop the daemons by the pids in
#                               their pid files (never by name)
# Clients (sbatch, squeue, scontrol) find the cluster through SLURM_CONF, which
# slurm_start exports. Needs /usr/bin/python3 (to find free ports).

slurm_dir=""
slurm_home=""
# the daemons are in /usr/sbin, which a non-login shell's PATH may lack
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin; export PATH ;; esac

slurm_msg() { echo "slurm_lib: $*" >&2; }

# why this machine cannot run a Slurm test, or nothing when it can
slurm_why_not() {
	if [ "$(id -u)" != 0 ]; then
		echo "not root (the test runs munged, slurmctld and slurmd as root)"
		return
	fi
	for sl_c in munged mungekey slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
		if ! command -v "$sl_c" >/dev/null 2>&1; then
			echo "'$sl_c' is missing (scripts/setup --test installs slurm-wlm and munge)"
			return
		fi
	done
}

slurm_need() {
	sl_why=$(slurm_why_not)
	[ -z "$sl_why" ] && return 0
	# CI runs as root after scripts/setup --test: a skip there would hide a
	# broken setup, so it fails
	if [ "${CI:-}" = true ]; then
		slurm_msg "cannot run under CI: $sl_why"
		exit 1
	fi
	echo "skipped: $sl_why"
	exit 77
}

# two consecutive TCP ports free on this host (slurmctld's, slurmd's), tried
# from a point that depends on the pid so that two tests at once do not race
# for the same pair
slurm_free_ports() {
	/usr/bin/python3 - "$$" <<'PY'
import socket, sys
start = 21000 + int(sys.argv[1]) % 4000 * 2
for base in list(range(start, 29000, 2)) + list(range(21000, start, 2)):
    socks = []
    try:
        for p in (base, base + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("0.0.0.0", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit(1)
PY
}

# slurm_wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s until it succeeds
slurm_wait_for() {
	sl_limit=$(($1 * 5))
	sl_what=$2
	shift 2
	sl_i=0
	until "$@" >/dev/null 2>&1; do
		sl_i=$((sl_i + 1))
		if [ $sl_i -ge $sl_limit ]; then
			slurm_msg "$sl_what: not after $((sl_limit / 5)) s"
			return 1
		fi
		sleep 0.2
	done
}

slurm_node_idle() {
	[ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ]
}

# print the last lines of every daemon log, for a failure's message
slurm_logs() {
	for sl_f in "$slurm_dir"/log/*.log; do
		[ -f "$sl_f" ] || continue
		echo "--- $sl_f" >&2
		tail -n 15 "$sl_f" >&2
	done
}

slurm_start() {
	slurm_dir=$1
	sl_host=$(hostname -s)
	# a Unix socket's path has at most 107 bytes: munged's, and slurmd's per
	# job step (SPOOL/HOST_JOB.STEP); a deep build directory gets a short one
	# in /tmp instead (slurm_home says which, for the caller to remove)
	if [ $((${#slurm_dir} + ${#sl_host} + 32)) -gt 107 ]; then
		slurm_dir=$(mktemp -d /tmp/bvslurm.XXXXXX)
	fi
	slurm_home=$slurm_dir
	# the traps first: a start that fails half-way stops what it started
	trap slurm_stop EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 141' PIPE
	mkdir -p "$slurm_dir/munge" "$slurm_dir/state" "$slurm_dir/spool" "$slurm_dir/run" "$slurm_dir/log"
	# munged refuses a key directory others may write to, and warns about a
	# socket directory others may not search
	chmod 755 "$slurm_dir" "$slurm_dir/munge"
	sl_port=$(slurm_free_ports) || { slurm_msg "no two free TCP ports in 21000-29000"; return 1; }
	sl_conf=$slurm_dir/slurm.conf
	# NodeAddr 127.0.0.1: the daemons reach each other whatever the host name
	# resolves to; KillWait 5: a cancelled job is gone in seconds, not 30;
	# the node's CPUs and memory are what slurmd itself finds (slurmd -C), so
	# it never registers smaller than configured and drains
	sl_node=$(slurmd -C | sed -n 's/^NodeName=[^ ]* \(.*\)/\1/p' | sed 's/ *UpTime=.*//')
	[ -n "$sl_node" ] || { slurm_msg "slurmd -C printed no node line"; return 1; }
	cat >"$sl_conf" <<EOF
ClusterName=bvtest
SlurmctldHost=$sl_host(127.0.0.1)
SlurmctldPort=$sl_port
SlurmdPort=$((sl_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$slurm_dir/munge/munge.socket
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/run/slurmctld.pid
SlurmdPidFile=$slurm_dir/run/slurmd.pid
SlurmctldLogFile=$slurm_dir/log/slurmctld.log
SlurmdLogFile=$slurm_dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
KillWait=5
MinJobAge=600
NodeName=$sl_host NodeAddr=127.0.0.1 $sl_node State=UNKNOWN
PartitionName=debug Nodes=$sl_host Default=YES MaxTime=INFINITE State=UP
EOF
	export SLURM_CONF="$sl_conf"
	sl_m=$slurm_dir/munge
	mungekey --create --keyfile="$sl_m/munge.key" >/dev/null 2>&1 ||
		{ slurm_msg "mungekey could not create '$sl_m/munge.key'"; return 1; }
	# --force: munged refuses key and log paths below a directory others may
	# write to (a build tree in a group-writable folder); these are the test's own
	munged --force --socket="$sl_m/munge.socket" --key-file="$sl_m/munge.key" \
		--pid-file="$slurm_dir/run/munged.pid" --log-file="$slurm_dir/log/munged.log" \
		--seed-file="$sl_m/munged.seed" 2>>"$slurm_dir/log/munged.log" ||
		{ slurm_msg "munged did not start"; slurm_logs; return 1; }
	slurm_wait_for 10 "munged's socket '$sl_m/munge.socket'" test -S "$sl_m/munge.socket" ||
		{ slurm_logs; return 1; }
	slurmctld -f "$sl_conf" 2>>"$slurm_dir/log/slurmctld.log" ||
		{ slurm_msg "slurmctld did not start"; slurm_logs; return 1; }
	slurmd -f "$sl_conf" 2>>"$slurm_dir/log/slurmd.log" ||
		{ slurm_msg "slurmd did not start"; slurm_logs; return 1; }
	slurm_wait_for 30 "slurmctld answering 'scontrol ping'" scontrol ping ||
		{ slurm_logs; return 1; }
	slurm_wait_for 30 "node '$sl_host' idle in sinfo" slurm_node_idle ||
		{ slurm_msg "sinfo says: $(sinfo -h -N -o '%t %E' 2>&1)"; slurm_logs; return 1; }
}

# slurm_jobs: one line per job or array task the cluster knows: id, name, state
slurm_jobs() {
	squeue -h -t all -o '%i %j %T %r' 2>/dev/null
}

# 0 when no job can still change: all have ended; or one has failed and
# nothing runs, the rest waiting for ever on dependencies (afterok of a failed
# job: DependencyNeverSatisfied, and "Dependency" for the jobs after those)
slurm_settled() {
	sl_s=$(slurm_jobs)
	[ -n "$sl_s" ] || return 1
	# the jobs that are not over, less those waiting on a dependency
	sl_live=$(echo "$sl_s" | grep -E ' (PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|RESIZING|STAGE_OUT|SIGNALING) ' |
		grep -v -E ' PENDING (Dependency|DependencyNeverSatisfied)$') || true
	[ -z "$sl_live" ] || return 1
	# every job over, or at least one failed (else a dependency is about to be met)
	! echo "$sl_s" | grep -q ' PENDING ' ||
		echo "$sl_s" | grep -q -E ' (FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) '
}

# slurm_wait_all SECONDS: wait until every job submitted has ended (or can
# never start); 0 when all ended COMPLETED
slurm_wait_all() {
	slurm_wait_for "$1" "the jobs ending" slurm_settled || return 1
	! slurm_jobs | grep -v -q ' COMPLETED '
}

# stop the daemon whose pid file is $1 and whose command name is $2: SIGTERM,
# then SIGKILL after 10 s; the name is checked so that a pid reused since the
# file was written is left alone
slurm_kill_pidfile() {
	[ -f "$1" ] || return 0
	sl_pid=$(cat "$1")
	case "$sl_pid" in '' | *[!0-9]*) return 0 ;; esac
	[ "$(cat "/proc/$sl_pid/comm" 2>/dev/null)" = "$2" ] || return 0
	kill "$sl_pid" 2>/dev/null || return 0
	sl_i=0
	while [ -d "/proc/$sl_pid" ] && [ $sl_i -lt 50 ]; do
		sleep 0.2
		sl_i=$((sl_i + 1))
	done
	if [ -d "/proc/$sl_pid" ]; then
		slurm_msg "$2 ($sl_pid) ignored SIGTERM; killing it"
		kill -9 "$sl_pid" 2>/dev/null || true
	fi
}

slurm_stop() {
	[ -n "$slurm_dir" ] || return 0
	sl_d=$slurm_dir
	slurm_dir=""
	# jobs first, while slurmctld and slurmd can still end their steps: a job
	# left behind would keep running after the test
	if [ -f "$sl_d/run/slurmctld.pid" ] && scontrol ping >/dev/null 2>&1; then
		scancel --quiet --user=root 2>/dev/null || true
		sl_i=0
		while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $sl_i -lt 100 ]; do
			sleep 0.2
			sl_i=$((sl_i + 1))
		done
	fi
	slurm_kill_pidfile "$sl_d/run/slurmd.pid" slurmd
	slurm_kill_pidfile "$sl_d/run/slurmctld.pid" slurmctld
	slurm_kill_pidfile "$sl_d/run/munged.pid" munged
}

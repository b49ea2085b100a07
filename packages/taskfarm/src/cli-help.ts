import { DEFAULT_BIND, DEFAULT_CPU_PROF_DIR, DEFAULT_GRACE_MS, DEFAULT_INSPECT_PORT, DEFAULT_RESTARTS, RESTART_WINDOW_MS } from './launcher.ts';
import { KILL_AFTER_MS } from './launcher-process.ts';

const KILL_AFTER_S = KILL_AFTER_MS / 1000;

export const TOP_HELP = `Usage: taskfarm <command> [options] SCRIPT [ARGS...]

Runs a master/worker task farm over ZeroMQ: one coordinator hands out tasks,
workers run them. Like mpiexec for an mpi-master-slave application.

Commands:
  run      run SCRIPT as the coordinator (rank 0) plus N-1 workers on this machine
  worker   run one worker of SCRIPT that joins a coordinator, e.g. on another host
  keygen   write a CURVE keypair (NAME.key, NAME.pub) for a coordinator or a worker
  status   print the workers and queues of a running coordinator (see --metrics-port)

Options:
  -h, --help   show this help; "taskfarm <command> --help" describes a command

Examples:
  taskfarm run -n 4 examples/example1.ts
  taskfarm keygen --name coordinator                           # then one keypair per worker host
  taskfarm run -n 1 --bind tcp://0.0.0.0:5555 --curve-secret-key coordinator.key \\
      --curve-allow-list workers.allow app.ts                  # coordinator only
  taskfarm worker --connect tcp://10.0.0.5:5555 --curve-server-key coordinator.pub \\
      --curve-secret-key hostb.key app.ts                      # on each other host
  taskfarm status http://127.0.0.1:9464                       # a coordinator run with --metrics-port 9464
`;

export const RUN_HELP = `Usage: taskfarm run -n N [options] SCRIPT [ARGS...]

Runs SCRIPT (.ts or .js; TypeScript runs through tsx, no build step) as N
processes on this machine, like "mpiexec -n N python app.py": rank 0 is the
coordinator, ranks 1..N-1 are workers. Workers are started once rank 0 reports
that its coordinator is bound; if rank 0 exits before that, none is started.
Each output line is prefixed with its rank, e.g. "[2] ". Options go before
SCRIPT; everything after SCRIPT is passed to it.

Options:
  -n, --np N             number of processes, an integer >= 1 (required)
      --bind ENDPOINT    endpoint rank 0 binds (default: ${DEFAULT_BIND}, a free port);
                         with a wildcard host (0.0.0.0 or *) local workers dial 127.0.0.1.
                         Beyond loopback it needs CURVE (below) or --insecure
      --curve-secret-key FILE
                         rank 0's CURVE key file (taskfarm keygen), or its Z85 secret key:
                         encrypted, authenticated connections. The workers started here get
                         a keypair made for this run; others must be in --curve-allow-list
                         ($TASKFARM_CURVE_SECRET_KEY)
      --curve-allow-list FILE
                         public keys of the workers rank 0 admits, one per line (# comments);
                         re-read when taskfarm gets SIGHUP ($TASKFARM_CURVE_ALLOW_LIST)
      --insecure         allow a plaintext --bind beyond loopback: anyone who reaches the port
                         can join, read tasks and forge results ($TASKFARM_INSECURE=1)
      --inspect RANK     start rank RANK (0..N-1) with --inspect-brk, paused until a
                         debugger attaches (chrome://inspect)
      --inspect-port PORT
                         debugger port for --inspect (default: ${DEFAULT_INSPECT_PORT})
      --cpu-prof         write a V8 CPU profile per rank, DIR/rank-<R>.cpuprofile, when
                         the rank exits normally (not when killed by a signal)
      --cpu-prof-dir DIR directory for --cpu-prof; implies --cpu-prof
                         (default: ${DEFAULT_CPU_PROF_DIR})
      --grace SECONDS    how long workers may keep running once rank 0 has exited
                         before they get SIGTERM, then SIGKILL ${KILL_AFTER_S} s later
                         (default: ${DEFAULT_GRACE_MS / 1000})
      --metrics-port PORT
                         rank 0 serves /metrics (Prometheus), /healthz and /status (JSON)
                         on PORT over HTTP; 0 picks a free port (default: none;
                         $TASKFARM_METRICS_PORT)
      --metrics-host HOST
                         address the metrics server listens on (default: 127.0.0.1,
                         loopback only; 0.0.0.0 for every interface; $TASKFARM_METRICS_HOST)
      --log-level LEVEL  fatal, error, warn, info, debug, trace or silent, for every rank
                         (default: $TASKFARM_LOG_LEVEL, else info for rank 0, warn for workers)
      --no-progress      no live progress line (drawn only when stderr is a terminal)
      --restarts N       start a worker killed by a signal while rank 0 runs (OOM, kill,
                         or recycled for ignoring a task timeout) again with its rank, up to
                         N times within ${RESTART_WINDOW_MS / 1000} s; 0 never (default: ${DEFAULT_RESTARTS})
  -h, --help             show this help

Environment of each rank:
  TASKFARM_RANK       the rank, 0..N-1
  TASKFARM_SIZE       N
  TASKFARM_ROLE       "coordinator" for rank 0, "worker" for the others
  TASKFARM_LAUNCHER   1
  TASKFARM_BIND       rank 0 only: the --bind endpoint
  TASKFARM_CONNECT    workers only: the endpoint rank 0 reported
  TASKFARM_LOG_LEVEL  with --log-level: the level
  TASKFARM_METRICS_PORT, TASKFARM_METRICS_HOST
                      rank 0 only, with --metrics-port / --metrics-host
  TASKFARM_CURVE_SECRET_KEY, TASKFARM_CURVE_ALLOW_LIST, TASKFARM_CURVE_ALLOW_KEYS
                      rank 0 only, with --curve-secret-key: its key, its allow-list, and
                      the public key of the workers started here
  TASKFARM_CURVE_SERVER_KEY, TASKFARM_CURVE_SECRET_KEY
                      workers only, with --curve-secret-key: rank 0's public key and
                      the workers' own secret key
  TASKFARM_INSECURE   rank 0 only, with --insecure: 1
  TASKFARM_PROGRESS   rank 0 only: 1 when taskfarm draws a progress line; rank 0
                      then reports { taskfarm: 'progress', done, total, ... } over IPC
  TASKFARM_RESTARTS   how many times this rank was started again (0 the first time)
Rank 0 reports its endpoint over the Node IPC channel once bound:
  process.send({ taskfarm: 'bound', endpoint: 'tcp://127.0.0.1:PORT' })

Exit status:
  0 when every rank exits 0; otherwise the status of the first rank to fail
  (128 + signal number if it was killed by a signal), and a line on stderr
  names each failed rank. Workers that taskfarm terminated after rank 0
  exited 0 are not failures. On SIGINT (Ctrl-C) or SIGTERM, taskfarm sends
  the same signal to every rank, waits for them (SIGKILL after ${KILL_AFTER_S} s, or at
  a second Ctrl-C) and exits 130 or 143.

Examples:
  taskfarm run -n 4 examples/example1.ts
  taskfarm run -n 8 --bind tcp://0.0.0.0:5555 app.ts --input data.csv
  taskfarm run -n 3 --inspect 1 app.ts       # debug rank 1
  taskfarm run -n 4 --cpu-prof app.ts        # profiles/rank-0.cpuprofile ... rank-3
`;

export const WORKER_HELP = `Usage: taskfarm worker [--connect ENDPOINT] [options] SCRIPT [ARGS...]

Runs one worker process of SCRIPT (.ts or .js) that joins a coordinator started
elsewhere, e.g. with "taskfarm run -n 1 --bind tcp://0.0.0.0:5555 app.ts" on
another host. Output lines are prefixed with "[w] " ("[wN] " with --rank N).
Options go before SCRIPT; everything after SCRIPT is passed to it.

Options:
      --connect ENDPOINT the coordinator's endpoint, e.g. tcp://10.0.0.5:5555
                         (default: $TASKFARM_CONNECT; one of the two is required)
      --rank N           this worker's rank, an integer >= 1 (default: none, the
                         coordinator numbers workers itself)
      --curve-server-key FILE
                         the coordinator's CURVE public key (its NAME.pub, or the Z85 key):
                         required when it runs with --curve-secret-key
                         ($TASKFARM_CURVE_SERVER_KEY)
      --curve-secret-key FILE
                         this worker's key file from taskfarm keygen (or its Z85 secret key);
                         its NAME.pub must be in the coordinator's allow-list
                         ($TASKFARM_CURVE_SECRET_KEY)
      --log-level LEVEL  fatal, error, warn, info, debug, trace or silent
                         (default: $TASKFARM_LOG_LEVEL, else warn)
      --inspect          start with --inspect-brk, paused until a debugger attaches
      --inspect-port PORT
                         debugger port for --inspect (default: ${DEFAULT_INSPECT_PORT})
      --cpu-prof         write a V8 CPU profile into DIR when the worker exits normally
                         (rank-<N>.cpuprofile with --rank, else Node's default name)
      --cpu-prof-dir DIR directory for --cpu-prof; implies --cpu-prof
                         (default: ${DEFAULT_CPU_PROF_DIR})
      --restarts N       start the worker again when a signal kills it, up to N times
                         within ${RESTART_WINDOW_MS / 1000} s; 0 never (default: ${DEFAULT_RESTARTS})
  -h, --help             show this help

Environment of the worker:
  TASKFARM_CONNECT    the coordinator's endpoint
  TASKFARM_RANK       N with --rank N, otherwise unset
  TASKFARM_CURVE_SERVER_KEY, TASKFARM_CURVE_SECRET_KEY
                      with --curve-server-key / --curve-secret-key (or as inherited)
  TASKFARM_ROLE       "worker"
  TASKFARM_LAUNCHER   1
  TASKFARM_RESTARTS   how many times this worker was started again (0 the first time)

Exit status:
  the worker's own (128 + signal number if it was killed by a signal).
  SIGINT and SIGTERM are passed on to the worker (SIGKILL ${KILL_AFTER_S} s later, or at a
  second signal).

Examples:
  taskfarm worker --connect tcp://10.0.0.5:5555 --curve-server-key coordinator.pub \\
      --curve-secret-key $(hostname -s).key app.ts
  TASKFARM_CONNECT=tcp://10.0.0.5:5555 taskfarm worker --rank 3 app.ts --verbose
`;

export const KEYGEN_HELP = `Usage: taskfarm keygen [--out DIR] [--name NAME] [--force]

Writes a new CURVE keypair for a coordinator or a worker:
  DIR/NAME.key  both keys, readable by you only (mode 0600): give it to the
                process it belongs to (--curve-secret-key), and to nobody else
  DIR/NAME.pub  the public key and NAME on one line (mode 0644): a worker's line
                goes into the coordinator's allow-list; the coordinator's .pub goes
                to every worker (--curve-server-key)

Options:
      --out DIR    directory to write into, created if missing (default: .)
      --name NAME  base name of the files (default: this host's short name)
      --force      replace existing files (whoever uses the old key is locked out)
  -h, --help       show this help

Examples:
  taskfarm keygen --name coordinator --out keys
  taskfarm keygen --out keys                       # on each worker host: keys/HOST.key
  cat keys/*.pub | grep -v coordinator >> workers.allow
`;

export const STATUS_HELP = `Usage: taskfarm status [--json] URL

Prints the state of a running coordinator: its workers (rank, host, pid,
state, task in flight, busy time), its task types (queued, in flight,
completed, failed) and totals. URL is the coordinator's metrics server, started
with "taskfarm run --metrics-port PORT" (or TASKFARM_METRICS_PORT), e.g.
http://127.0.0.1:9464; the JSON comes from URL/status.

Options:
      --json       print the /status JSON document as served
  -h, --help       show this help

Exit status:
  0 when the coordinator answered, 1 when it could not be reached, 2 for a bad
  command line.

Examples:
  taskfarm status http://127.0.0.1:9464
  taskfarm status --json coordinator.example:9464
`;

"""A model server run as a child process of the web process: started on first use, once, and again after a crash.

llama.cpp is native code. When it crashes (SIGILL on a CPU that lacks an instruction it was built for,
SIGSEGV, the kernel's OOM killer), its whole process dies. Inside the web process that was every request at
once; in a child process it is only the replies it was writing, which end as "unavailable", keeping their
text, and the next message starts the child again.

The child dies with the web process: stop() at exit, and on Linux the parent-death signal (prctl
PR_SET_PDEATHSIG) when the web process is killed outright.
"""

import atexit
import collections
import ctypes
import logging
import os
import queue
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

import httpx2

from . import Unavailable

logger = logging.getLogger(__name__)

START_SECONDS = 120.0  # loading a large GGUF from a cold disk takes a while; SmolLM2 takes a second or two
STOP_SECONDS = 5.0
OUTPUT_LINES = 40  # the child's last lines, logged when it fails to start or dies
# The child's environment: only these (and names with these prefixes) pass. llama_cpp.server reads its
# settings from the environment too (PORT, HOST, MODEL, N_CTX...): the web process's PORT must not move it.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "TMPDIR", "LD_LIBRARY_PATH", "PYTHONPATH")
PASSED_PREFIXES = ("LC_", "GGML_", "OMP_")
PR_SET_PDEATHSIG = 1
_STARTING_FAILED = "The model could not start. Please retry shortly; the operator can find why in the logs."
_running = set()


@dataclass
class Child:
    """A started server: its process, its OpenAI-compatible base URL, and the key it requires."""

    process: subprocess.Popen
    url: str
    key: str
    stopped: bool = False  # stopped on purpose (the web process is exiting), not crashed
    reported: bool = False  # its crash is logged once, however many replies it cut

    def exit_status(self, wait=0.0):
        """How the process ended ('killed by SIGKILL', 'exited with status 1'), or None while it runs.

        wait: seconds to give it first. A killed child's sockets close a moment before it can be reaped,
        so a reply cut by a crash waits a little to tell a crash from a network error.
        """
        try:
            code = self.process.wait(timeout=wait) if wait else self.process.poll()
        except subprocess.TimeoutExpired:
            return None
        if code is None:
            return None
        if code >= 0:
            return f"exited with status {code}"
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:  # a signal Python has no name for
            return f"killed by signal {-code}"


class ModelProcess:
    """Supervises one server child: `child()` returns it running, starting it when needed."""

    def __init__(self, command, name="the local model", start_seconds=START_SECONDS):
        self.command = command  # command(port) -> argv
        self.name = name
        self.start_seconds = start_seconds
        self.starts = 0
        self._child = None
        self._lock = threading.Lock()  # one start at a time: concurrent first requests share it
        self._output = collections.deque(maxlen=OUTPUT_LINES)

    def child(self):
        """The running child, started (and waited for) first if it is not running; raise Unavailable."""
        with self._lock:
            child = self._child
            if child is not None:
                status = child.exit_status()
                if status is None:
                    return child
                logger.warning("%s (pid %d) is gone (%s): starting it again", self.name, child.process.pid, status)
                self._child = None
            self._child = self._start()
            return self._child

    def pid(self):
        """The running child's process id, or None."""
        child = self._child
        return child.process.pid if child is not None and child.exit_status() is None else None

    def crashed(self, child, wait=0.5):
        """How child ended, or None while it runs; a crash is logged with the child's last output."""
        status = child.exit_status(wait)
        if status is not None and not (child.stopped or child.reported):
            child.reported = True
            logger.error(
                "%s (pid %d) %s during a reply; it starts again on the next message. Its last output:\n%s",
                self.name,
                child.process.pid,
                status,
                self.output(),
            )
        return status

    def output(self):
        """The child's last lines of output (stdout and stderr)."""
        return "\n".join(self._output)

    def stop(self):
        """Stop the child: SIGTERM, then SIGKILL after STOP_SECONDS."""
        with self._lock:
            child, self._child = self._child, None
        _running.discard(self)
        if child is None or child.process.poll() is not None:
            return
        child.stopped = True
        child.process.terminate()
        try:
            child.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()

    def _start(self):
        started = time.monotonic()
        port, key = _free_port(), secrets.token_urlsafe(24)
        process = _spawn(self.command(port), _environment(key))
        self.starts += 1
        _running.add(self)
        reader = threading.Thread(target=self._read_output, args=(process,), name="model-output", daemon=True)
        reader.start()
        child = Child(process, f"http://127.0.0.1:{port}/v1", key)
        try:
            _wait_until_ready(child, self.start_seconds)
        except Unavailable as error:
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait()
            reader.join(1)  # its last lines, which say why
            logger.error("%s could not start: %s. Its last output:\n%s", self.name, error, self.output())
            raise
        logger.info(
            "%s started as a child process (pid %d, port %d) in %.1f s",
            self.name,
            process.pid,
            port,
            time.monotonic() - started,
        )
        return child

    def _read_output(self, process):
        # Read to the end, always: a pipe nobody reads fills up and blocks the child.
        for line in process.stdout:
            text = line.decode("utf-8", "replace").rstrip()
            self._output.append(text)
            logger.debug("model server: %s", text)


def _wait_until_ready(child, seconds):
    """Return once the child lists its models; raise Unavailable if it exits or takes longer than seconds."""
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {child.key}"}
    while True:
        status = child.exit_status()
        if status is not None:
            raise Unavailable(f"the model server {status} while starting", _STARTING_FAILED)
        try:
            if httpx2.get(child.url + "/models", headers=headers, timeout=5).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise Unavailable(f"the model server did not answer within {seconds:.0f} s", _STARTING_FAILED)
        time.sleep(0.1)


def _free_port():
    # The kernel picks a free port; the child binds it a moment later (a race no test has lost).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(key):
    passed = {
        name: value
        for name, value in os.environ.items()
        if name in PASSED_ENVIRONMENT or name.startswith(PASSED_PREFIXES)
    }
    return {**passed, "API_KEY": key}  # llama_cpp.server reads its API key from the environment


def _die_with_parent():
    """A preexec_fn that has the kernel SIGKILL the child when its parent dies (Linux), or None elsewhere."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, in the parent: the child only calls it
    except (AttributeError, OSError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl: no signal would ever come
            os._exit(1)

    return preexec


class _Spawner:
    """Starts processes from one thread that lives as long as the web process.

    Linux sends the parent-death signal when the *thread* that forked the child ends, not the process: a
    child forked by a reply's thread would be killed when that reply ends.
    """

    def __init__(self):
        self.pid = os.getpid()
        self.requests = queue.Queue()
        threading.Thread(target=self._run, name="model-spawner", daemon=True).start()

    def spawn(self, argv, environment):
        """Popen(argv) in the spawner thread; return it, or raise what Popen raised."""
        answer = queue.Queue(maxsize=1)
        self.requests.put((argv, environment, answer))
        result = answer.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def _run(self):
        while True:
            argv, environment, answer = self.requests.get()
            try:
                answer.put(
                    subprocess.Popen(
                        argv,
                        env=environment,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_die_with_parent(),
                    )
                )
            except Exception as error:  # OSError (no such interpreter), or a preexec_fn failure
                answer.put(error)


_spawner = None
_spawner_lock = threading.Lock()


def _spawn(argv, environment):
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner.pid != os.getpid():  # none yet, or a forked copy without its thread
            _spawner = _Spawner()
    try:
        return _spawner.spawn(argv, environment)
    except OSError as error:
        raise Unavailable(f"the model server could not be started: {error}", _STARTING_FAILED) from error


@atexit.register
def _stop_all():
    for supervisor in list(_running):
        supervisor.stop()

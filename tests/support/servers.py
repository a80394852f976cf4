"""Real servers for tests and benchmarks: the app in-process, and llama.cpp, Redis and gunicorn as processes.

In-process servers bind port 0 and read the port the kernel gave them. A subprocess cannot hand its port
back, so it gets one from free_port().
"""

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from werkzeug.serving import make_server

from chatbot.llm.local import server_command

ROOT = Path(__file__).resolve().parents[2]
# Console scripts (gunicorn, moto_server) installed next to the running interpreter, whatever the venv's name.
BIN = Path(sys.executable).parent
REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low, high = map(int, ports.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A loopback port that is free now, for a server started in another process.

    The port is drawn below the kernel's ephemeral range, so an outgoing connection (the app calling
    S3, say) can never be handed it before the subprocess binds it; the bind here only checks that no
    server holds it already.
    """
    low, _ = _ephemeral_range()
    for _ in range(100):
        port = random.randrange(20000, min(low, 32768))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found")


def wait_until_up(url, process=None, seconds=60):
    """Poll url until the server answers (any HTTP status); fail early if process exits."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # an HTTP answer, even an error, means the server is up
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the server for {url} exited with status {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds} s") from None
            time.sleep(0.1)


def child_pids(pid):
    """The ids of the processes whose parent is pid (a gunicorn master's workers), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    # The command name, in parentheses, may hold spaces: the parent id is after the last ")".
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


class LiveServer:
    """The app served over real HTTP by werkzeug in a thread: `with LiveServer(app) as server: server.url`."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        # Polled every 50 ms: shutdown() waits up to one poll (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class Process:
    """A server in a subprocess of its own session, on a free loopback port; a context manager.

    stop() is SIGTERM to the main process (a graceful stop); kill() is SIGKILL to every process of the
    session at once (a crash: gunicorn's workers die with their master).
    """

    name = "server"

    def __init__(self, port=None):
        self.port = port or free_port()
        self.process = None
        self.directory = tempfile.mkdtemp(prefix=f"{self.name}-")
        self.log_path = os.path.join(self.directory, "output.log")

    def command(self):
        """The argv that starts the server."""
        raise NotImplementedError

    def environment(self):
        """The environment the server runs with."""
        return None

    def wait(self, seconds):
        """Return once the server answers."""
        raise NotImplementedError

    def start(self, seconds=60):
        """Start the server and wait until it answers."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait(seconds)
        except Exception:
            self.kill()
            raise
        return self

    def running(self):
        """Whether the server's main process is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, seconds=40):
        """SIGTERM, then wait for the server to exit (SIGKILL after seconds)."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        """SIGKILL the server and every process it started, at once, as a crash would."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def output(self):
        """Everything the server wrote to stdout and stderr so far."""
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class LlamaServer(Process):
    """llama-cpp-python's OpenAI-compatible server for a GGUF model, as the local backend starts it; url is its
    base (add /v1)."""

    name = "llama"

    def __init__(self, model_path, threads=None, context_tokens=2048, port=None):
        super().__init__(port)
        self.model_path, self.threads, self.context_tokens = model_path, threads, context_tokens
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self):
        # The argv the local backend starts its child with (chatbot/llm/local.py), without its API key.
        return server_command(self.model_path, self.port, context_tokens=self.context_tokens, threads=self.threads)

    def wait(self, seconds):
        wait_until_up(self.url + "/v1/models", self.process, seconds)


def fill_redis(client):
    """Store fillers until a Redis with maxmemory and noeviction refuses more; return their keys."""
    import redis

    fillers = []
    try:
        while True:
            client.set(f"filler:{len(fillers)}", b"x" * 4096)
            fillers.append(f"filler:{len(fillers)}")
    except redis.OutOfMemoryError:
        return fillers


class RedisServer(Process):
    """Debian's redis-server on a free loopback port, in a temporary directory, persisting nothing.

    kill() then start() brings it back empty on the same port and url, as a crashed Redis would. arguments
    are more of redis-server's options, as a plan's limits: ("--maxclients", "20"), ("--maxmemory", "2mb",
    "--maxmemory-policy", "noeviction"), or ("--rename-command", "DUMP", "") for a command a service refuses.
    """

    name = "redis"

    def __init__(self, binary=REDIS_SERVER, port=None, arguments=()):
        super().__init__(port)
        self.binary = binary
        self.arguments = list(arguments)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def command(self):
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            self.directory,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            *self.arguments,
        ]

    def wait(self, seconds):
        import redis

        deadline = time.monotonic() + seconds
        client = self.client(socket_timeout=1)
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if not self.running():
                    raise RuntimeError(f"redis-server exited with status {self.process.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer within {seconds} s") from None
                time.sleep(0.05)
            finally:
                client.close()

    def restart(self, seconds=30):
        """Kill the server (if it runs) and start it again on the same port: empty, as after a crash."""
        self.kill()
        return self.start(seconds)

    def client(self, **options):
        """A redis-py client for the server."""
        import redis

        return redis.Redis.from_url(self.url, **options)

    def connected_clients(self):
        """How many client connections the server holds, this question's own among them."""
        client = self.client()
        try:
            return client.info("clients")["connected_clients"]
        finally:
            client.close()

    def peak_clients(self, interval=0.02):
        """A context manager sampling connected_clients every interval seconds while open; its `peak` is the
        most seen, its own connection not counted."""
        return _PeakClients(self, interval)

    def flush(self):
        """Forget every key (between tests sharing the session's server)."""
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()


class _PeakClients:
    def __init__(self, server, interval):
        self.client, self.interval, self.peak = server.client(), interval, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while True:
            self.peak = max(self.peak, self.client.info("clients")["connected_clients"] - 1)
            if self.done.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)
        self.client.close()


class Gunicorn(Process):
    """The app under gunicorn as the Procfile starts it (`gunicorn -c gunicorn.conf.py wsgi:app`).

    settings become environment variables of the server (PORT is set to its port); os.environ is the
    base, so the test's environment (cleared by conftest) is what it sees. Several can run at once.
    """

    name = "gunicorn"

    def __init__(self, settings=None, port=None, ready_path="/auth/login"):
        super().__init__(port)
        self.settings = dict(settings or {})
        self.ready_path = ready_path
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self):
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]

    def environment(self):
        return {**os.environ, **self.settings, "PORT": str(self.port)}

    def wait(self, seconds):
        wait_until_up(self.url + self.ready_path, self.process, seconds)

    def worker_pids(self):
        """The ids of the running worker processes."""
        return child_pids(self.process.pid) if self.running() else []

"""A TCP forwarder that can cut the network between the app and a server, then restore it."""

import socket
import threading


class FaultProxy:
    """Forwards 127.0.0.1:port to a target; cut() refuses and drops connections until restore()."""

    def __init__(self, target_port):
        self.target_port = target_port
        # Bound on port 0 at once, so the port is ours from the start (no free-port race).
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._connections = set()
        self._lock = threading.Lock()

    def start(self):
        """Forward connections to the target."""
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def restore(self):
        """Listen again on the same port, and forward."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        return self.start()

    def cut(self):
        """Stop listening (new connections are refused) and drop open ones."""
        try:
            # shutdown() wakes the thread blocked in accept(); close() alone leaves the socket listening.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                try:
                    # shutdown() wakes a thread blocked in recv() and sends the FIN; close() alone does neither.
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self._connections.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    # shutdown() first: close() alone sends no FIN while the other pipe's thread is still
                    # blocked in recv() on this socket, and the browser would wait on a silent connection.
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # shut down already, or closed
                try:
                    end.close()
                except OSError:
                    pass

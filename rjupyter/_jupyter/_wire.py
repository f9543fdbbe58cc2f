"""The two ways rjupyter talks to a Jupyter server through the tunnel: REST and a kernel WebSocket.

Both send the token in the ``Authorization`` header — never in a URL, so it cannot reach a log
line — and neither uses a proxy from the environment: the server is on our own loopback.
"""

from __future__ import annotations

import json
import logging
import queue
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import websocket  # websocket-client

from .._deadline import Deadline
from .._errors import KernelError, LaunchTimeout, RJupyterError
from ._messages import Message

__all__ = ["INBOX_LIMIT", "Endpoint", "KernelSocket", "refusal_error"]

logger = logging.getLogger(__name__)

#: Unread kernel messages kept at most; older ones are dropped (with a WARNING).
INBOX_LIMIT = 10_000

#: Loopback only: an opener that ignores ``http_proxy`` and friends.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Endpoint:
    """Where a server answers (``http://127.0.0.1:PORT/base/``) and the token it wants.

    Args:
        base_url: The server's root URL through the tunnel, ending in ``/``.
        token: The server's token.
        host: The remote host's name, for messages.
    """

    def __init__(self, base_url: str, token: str, host: str) -> None:
        if not base_url.startswith("http://") or not base_url.endswith("/"):
            raise ValueError(f"base_url must be http://.../; got {base_url!r}")
        self.base_url = base_url
        self.token = token
        self.host = host

    def __repr__(self) -> str:
        return f"<Endpoint {self.base_url} host={self.host!r}>"

    @property
    def headers(self) -> dict[str, str]:
        """The headers that authenticate a request."""
        return {"Authorization": f"token {self.token}"}

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = 30.0) -> Any:
        """Make one REST call and return the decoded JSON reply (None when empty).

        Args:
            method: ``GET``, ``POST``, ``DELETE``...
            path: Relative to the base URL, e.g. ``"api/kernels"``.
            body: Sent as JSON; POSTs without one send ``{}``.
            timeout: Seconds for the whole call.

        Returns:
            The reply's JSON.

        Raises:
            KernelError: The server answered with an error status or not at all.
        """
        data = None if body is None and method != "POST" else json.dumps(body or {}).encode()
        # Our own http://127.0.0.1 URL (checked in __init__), never a user-supplied scheme.
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path,
            data=data,
            method=method,
            headers={**self.headers, "Content-Type": "application/json"},
        )
        logger.debug("%s /%s", method, path)
        try:
            with _OPENER.open(request, timeout=timeout) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as error:
            raise KernelError(
                f"the Jupyter server on {self.host} answered {method} /{path} with "
                f"{error.code}: {_server_message(error)}"
            ) from error
        except (urllib.error.URLError, OSError) as error:
            raise KernelError(
                f"the Jupyter server on {self.host} did not answer {method} /{path} ({error}); "
                "is the notebook still open?"
            ) from error
        return json.loads(raw) if raw.strip() else None

    def wait_ready(
        self,
        deadline: Deadline,
        failure: Callable[[], RJupyterError | None],
        output_tail: Callable[[], str],
    ) -> None:
        """Poll ``api/status`` until the server answers 200.

        Args:
            deadline: When to give up.
            failure: Asked before each try; the error to raise when the server is known to
                have failed (it exited), else None.
            output_tail: The server's last output, for the timeout's message.

        Raises:
            RJupyterError: What ``failure`` returned.
            LaunchTimeout: No answer before the deadline.
        """
        pause = 0.02
        while True:
            error = failure()
            if error is not None:
                raise error
            try:
                self.call("GET", "api/status", timeout=deadline.remaining(0.5))
                return
            except KernelError as exc:
                logger.debug("not ready yet: %s", exc)
            if deadline.expired:
                raise LaunchTimeout(
                    f"Jupyter on {self.host} did not answer within {deadline.seconds:.0f} s; it "
                    "has been stopped. Raise timeout if the host is slow",
                    host=self.host,
                    output_tail=output_tail(),
                )
            time.sleep(min(pause, deadline.remaining()))
            pause = min(pause * 2, 0.25)


def _server_message(error: urllib.error.HTTPError) -> str:
    """The ``message`` a Jupyter server puts in its JSON error replies, else the reason."""
    try:
        body = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason)


def refusal_error(endpoint: Endpoint, name: str, error: KernelError) -> KernelError:
    """The error to raise when the server refused to start kernel ``name``.

    Jupyter answers an unknown kernel name with a bare 500; this asks which kernels it has and
    says so. Otherwise ``error`` is returned as it is.
    """
    try:
        specs = sorted(endpoint.call("GET", "api/kernelspecs")["kernelspecs"])
    except (KernelError, KeyError, TypeError):
        return error
    if not name or name in specs:
        return error
    return KernelError(
        f"no kernel named {name!r} on {endpoint.host}; it has: {', '.join(specs) or 'none'} "
        "(see `jupyter kernelspec list` there)"
    )


class KernelSocket:
    """A kernel's ``/channels`` WebSocket, read by a thread into a queue.

    One consumer at a time calls :meth:`receive`; any thread may :meth:`send`. When the
    connection breaks, every later :meth:`receive` raises :class:`KernelError`.

    Args:
        endpoint: The server.
        kernel_id: The kernel to connect to.
        timeout: Seconds allowed for the WebSocket handshake.

    Raises:
        KernelError: The handshake failed.
    """

    def __init__(self, endpoint: Endpoint, kernel_id: str, *, timeout: float) -> None:
        self.session = uuid.uuid4().hex
        self.kernel_id = kernel_id
        url = endpoint.base_url.replace("http://", "ws://", 1)
        url += f"api/kernels/{kernel_id}/channels?session_id={self.session}"
        try:
            self._socket = websocket.create_connection(
                url,
                header=[f"{key}: {value}" for key, value in endpoint.headers.items()],
                timeout=timeout,
                enable_multithread=True,
                http_no_proxy=["127.0.0.1", "localhost"],
            )
        except (websocket.WebSocketException, OSError) as error:
            raise KernelError(
                f"could not open the WebSocket of kernel {kernel_id} on {endpoint.host}: {error}",
                kernel_id=kernel_id,
            ) from error
        self._socket.settimeout(None)
        self._inbox: queue.Queue[Message | Exception] = queue.Queue()
        self._dropped = 0
        self._reader = threading.Thread(
            target=self._read, name=f"rjupyter-kernel-{kernel_id[:8]}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                frame = self._socket.recv()
                if not frame:
                    raise websocket.WebSocketConnectionClosedException("closed by the server")
                self._put(decode_frame(frame))
        except Exception as error:  # handed to the consumer, who raises it
            self._inbox.put(error)

    def _put(self, message: Message) -> None:
        """Queue a message; past :data:`INBOX_LIMIT` unread ones, drop the oldest (IOPub from
        other clients or a chatty background thread would otherwise pile up for ever)."""
        while self._inbox.qsize() >= INBOX_LIMIT:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
            self._dropped += 1
            if self._dropped == 1:
                logger.warning(
                    "kernel %s: more than %d messages arrived that nobody read; dropping the "
                    "oldest from now on",
                    self.kernel_id,
                    INBOX_LIMIT,
                )
        self._inbox.put(message)

    def discard_pending(self) -> int:
        """Drop what arrived while nobody waited (IOPub between requests); return how many.
        A broken connection stays queued, for :meth:`receive` to raise."""
        count = 0
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return count
            if isinstance(item, Exception):
                self._inbox.put(item)
                return count
            count += 1

    def send(self, message: Message) -> None:
        """Send one message.

        Raises:
            KernelError: The connection is broken.
        """
        try:
            self._socket.send(json.dumps(message))
        except (websocket.WebSocketException, OSError) as error:
            raise self._broken(error) from error

    def receive(self, timeout: float | None) -> Message | None:
        """The next message, or None when none came within ``timeout`` seconds (None: wait).

        Raises:
            KernelError: The connection is broken.
        """
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, Exception):
            self._inbox.put(item)  # every later call sees it too
            raise self._broken(item) from item
        return item

    def _broken(self, error: Exception) -> KernelError:
        return KernelError(
            f"the connection to kernel {self.kernel_id} broke ({error or type(error).__name__}); "
            "the kernel may have died or the notebook closed",
            kernel_id=self.kernel_id,
        )

    def close(self) -> None:
        """Close the connection and wait for the reader thread. Idempotent."""
        try:
            self._socket.abort()  # type: ignore[no-untyped-call]  # wakes the reader: its recv fails
        finally:
            self._socket.shutdown()  # type: ignore[no-untyped-call]
            self._reader.join(timeout=10)


def decode_frame(frame: str | bytes) -> Message:
    """Decode one WebSocket frame: JSON text, or jupyter_server's binary form (with buffers).

    The binary form is: a count ``n`` and ``n`` offsets (big-endian uint32), then the JSON message
    at the first offset and the buffers after it; the buffers are dropped.
    """
    if isinstance(frame, str):
        decoded: Message = json.loads(frame)
        return decoded
    (count,) = struct.unpack_from("!I", frame, 0)
    offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
    decoded = json.loads(frame[offsets[0] : offsets[1]])
    return decoded

"""The dask embed's budgets.  Concurrency: one ``distributed.Semaphore`` per
job, a lease held by every HTTP request on any worker from sending until its
body is closed; the lease ids name their worker, so that a scheduler plugin
can release a lost worker's leases at once.  Request rate: one
:class:`pplx_codec._rate.RatePolicy` per job kept on the scheduler by a
scheduler plugin (:class:`RateBudgets`), which grants each attempt of any
worker its slot.  Each worker keeps one :class:`pplx_codec.Client` per job,
over a transport that takes the leases, with a :class:`ClusterRate` as its
rate budget.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict

import httpx

try:
    from distributed import Semaphore
    from distributed.diagnostics.plugin import SchedulerPlugin
    from distributed.utils import sync
    from distributed.utils_comm import retry_operation
except ImportError:  # pragma: no cover - the dask extra installs distributed; embed() says it is needed
    # stand-ins so that the module imports (the classes below subclass them)
    Semaphore = SchedulerPlugin = object  # type: ignore[misc, assignment]

from .._rate import RatePolicy
from ..client import Client

#: Every job's semaphore name starts with this.
BUDGET_PREFIX = "pplx-codec-embed-"
_OWNER = "#"   # a lease id is "<worker address>#<uuid>"


class WorkerSemaphore(Semaphore):
    """The job's semaphore as a worker holds it: the same leases, with ids
    that name the worker, so that the scheduler can release a lost worker's
    leases (:class:`ReleaseLostLeases`)."""

    def __init__(self, *args, owner: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    async def _acquire(self, timeout=None):
        # distributed's Semaphore._acquire, with the owner in the lease id
        await self
        lease_id = f"{self.owner}{_OWNER}{uuid.uuid4().hex}"
        result = await retry_operation(self.scheduler.semaphore_acquire, name=self.name, timeout=timeout,
                                       lease_id=lease_id,
                                       operation=f"semaphore acquire: id={self.id}, lease_id={lease_id}, "
                                                 f"name={self.name}")
        if result:
            self._leases.append(lease_id)
        return result


class ReleaseLostLeases(SchedulerPlugin):
    """On the scheduler: when a worker is removed (its process died, or it
    was lost), release at once the budget leases its requests held."""

    name = "pplx-codec-release-lost-leases"
    idempotent = True   # one per scheduler, for every job

    def remove_worker(self, scheduler, worker: str, **kwargs) -> None:
        ext = scheduler.extensions.get("semaphores")
        if ext is None:
            return
        prefix = worker + _OWNER
        for name in [n for n in ext.leases if isinstance(n, str) and n.startswith(BUDGET_PREFIX)]:
            for lease_id in [i for i in ext.leases[name] if isinstance(i, str) and i.startswith(prefix)]:
                ext.release(name=name, lease_id=lease_id)


class RateBudgets(SchedulerPlugin):
    """On the scheduler: the request-rate budget of every job that has one,
    a :class:`RatePolicy` on the scheduler's clock.  ``take`` answers when
    the attempt may start (the scheduler sleeps, not the worker), so one
    round trip per attempt and one clock for the cluster.  Nothing is held
    by a worker: a worker lost while waiting or sending only leaves its slot
    unused (the rate dips, never rises), and the scheduler's state is the
    policy alone.  The handlers are the plugin's, added when it starts."""

    name = "pplx-codec-rate-budgets"
    idempotent = True   # one per scheduler, for every job

    def __init__(self):
        self.policies: dict[str, RatePolicy] = {}

    async def start(self, scheduler) -> None:
        scheduler.handlers.update({"pplx_codec_rate_open": self.open_budget,
                                   "pplx_codec_rate_close": self.close_budget,
                                   "pplx_codec_rate_take": self.take,
                                   "pplx_codec_rate_throttled": self.throttled})

    # (not open/close: close is a SchedulerPlugin hook)
    def open_budget(self, name: str, per_minute: float, burst: int) -> None:
        self.policies[name] = RatePolicy(per_minute, burst)

    def close_budget(self, name: str) -> None:
        self.policies.pop(name, None)

    def _policy(self, name: str) -> RatePolicy:
        policy = self.policies.get(name)
        if policy is None:
            raise RuntimeError(f"no request-rate budget {name!r} on the scheduler (its job has ended)")
        return policy

    async def take(self, name: str) -> None:
        for pause in self._policy(name).waits(time.monotonic):   # (one event loop: no lock)
            await asyncio.sleep(pause)

    def throttled(self, name: str, wait: float | None, age: float) -> None:
        now = time.monotonic()
        self._policy(name).throttled(now, wait, now - age)


class ClusterRate:
    """A worker client's rate budget (``_rate.Budget``): the job's policy on
    the scheduler (:class:`RateBudgets`), asked from the task's threads."""

    def __init__(self, name: str, scheduler_rpc, loop):
        self.name, self._rpc, self._loop = name, scheduler_rpc, loop

    def waits(self):
        # one blocking round trip: the scheduler answers at the attempt's slot
        sync(self._loop, self._rpc.pplx_codec_rate_take, name=self.name)
        yield from ()

    def throttled(self, wait: float | None, sent_at: float) -> None:
        sync(self._loop, self._rpc.pplx_codec_rate_throttled, name=self.name, wait=wait,
             age=time.monotonic() - sent_at)


CLIENTS: OrderedDict = OrderedDict()   # client_key -> (Client, httpx.Client, Semaphore)
CLIENTS_LOCK = threading.Lock()
MAX_CLIENTS = 8


class Releasing(httpx.SyncByteStream):
    """A response body that gives its lease back when closed."""

    def __init__(self, stream, release):
        self._stream, self._release, self._released = stream, release, False
        self._lock = threading.Lock()

    def __iter__(self):
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            with self._lock:
                released, self._released = self._released, True
            if not released:
                self._release()


class Budgeted(httpx.BaseTransport):
    """Each request holds a lease of the job's semaphore until its body is closed."""

    def __init__(self, inner: httpx.BaseTransport, semaphore):
        self._inner, self._sem = inner, semaphore

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._sem.acquire()
        try:
            resp = self._inner.handle_request(request)
        except BaseException:
            self._sem.release()
            raise
        resp.stream = Releasing(resp.stream, self._sem.release)
        return resp

    def close(self) -> None:
        self._inner.close()


def worker_client(job) -> Client:
    """This worker's client for the job (created on first use, then reused);
    ``job``: the job's ``_partition.Job``."""
    key = job.client_key()
    with CLIENTS_LOCK:
        hit = CLIENTS.get(key)
        if hit is not None:
            CLIENTS.move_to_end(key)
            return hit[0]
        from distributed import get_worker

        worker = get_worker()   # the task thread: bind the semaphore to this worker's scheduler and loop
        sem = WorkerSemaphore(max_leases=job.max_concurrency, name=job.budget, scheduler_rpc=worker.scheduler,
                              loop=worker.loop, owner=worker.address)
        limits = httpx.Limits(max_connections=max(10, job.max_concurrency))
        http = httpx.Client(transport=Budgeted(httpx.HTTPTransport(limits=limits), sem))
        # every request passes the client's timeout (None: the client's default) to httpx
        rate = None if job.max_requests_per_minute is None else ClusterRate(job.budget, worker.scheduler,
                                                                            worker.loop)
        client = Client(api_key=job.api_key, base_url=job.base_url, timeout=job.timeout,
                        max_retries=job.max_retries, max_concurrency=job.max_concurrency, http_client=http,
                        max_requests_per_minute=rate)
        CLIENTS[key] = (client, http, sem)
        while len(CLIENTS) > MAX_CLIENTS:
            _, (_, old_http, old_sem) = CLIENTS.popitem(last=False)
            old_http.close()
            if getattr(old_sem, "refresh_callback", None) is not None:
                old_sem.refresh_callback.stop()
        return client

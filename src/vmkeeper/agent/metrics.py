"""Prometheus text for the media service: queue depth, states, breaker, job seconds."""

from __future__ import annotations

from vmkeeper.media.breaker import BreakerState
from vmkeeper.media.jobqueue import MediaQueue
from vmkeeper.media.jobs import JobState

_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def render(queue: MediaQueue) -> str:
    counts = queue.store.counts()
    breaker = queue.breaker.status()
    lines = [
        "# HELP vmkeeper_media_queue_depth Jobs waiting in the queue.",
        "# TYPE vmkeeper_media_queue_depth gauge",
        f"vmkeeper_media_queue_depth {counts[JobState.QUEUED]}",
        "# HELP vmkeeper_media_running Jobs whose worker runs now.",
        "# TYPE vmkeeper_media_running gauge",
        f"vmkeeper_media_running {counts[JobState.RUNNING]}",
        "# HELP vmkeeper_media_jobs_total Finished jobs in the store, by final state.",
        "# TYPE vmkeeper_media_jobs_total counter",
    ]
    for state in (JobState.DONE, JobState.FAILED, JobState.REJECTED):
        lines.append(f'vmkeeper_media_jobs_total{{state="{state.value}"}} {counts[state]}')
    lines += [
        "# HELP vmkeeper_media_submissions_total Submissions since start, by what they got.",
        "# TYPE vmkeeper_media_submissions_total counter",
        f'vmkeeper_media_submissions_total{{result="deduplicated"}} {queue.deduplicated}',
        f'vmkeeper_media_submissions_total{{result="cached"}} {queue.cached}',
        f'vmkeeper_media_submissions_total{{result="refused_breaker_open"}} {queue.refused}',
        "# HELP vmkeeper_media_breaker_state 0 closed, 1 half-open, 2 open.",
        "# TYPE vmkeeper_media_breaker_state gauge",
        f"vmkeeper_media_breaker_state {_BREAKER_VALUE[breaker.state]}",
        "# HELP vmkeeper_media_breaker_consecutive_failures Media failures in a row.",
        "# TYPE vmkeeper_media_breaker_consecutive_failures gauge",
        f"vmkeeper_media_breaker_consecutive_failures {breaker.consecutive_failures}",
    ]
    seconds = queue.store.finished_seconds()
    lines += ["# HELP vmkeeper_media_job_seconds Run time of finished jobs.",
              "# TYPE vmkeeper_media_job_seconds histogram"]
    for bound in _BUCKETS:
        within = len([value for value in seconds if value <= bound])
        lines.append(f'vmkeeper_media_job_seconds_bucket{{le="{bound:g}"}} {within}')
    lines += [f'vmkeeper_media_job_seconds_bucket{{le="+Inf"}} {len(seconds)}',
              f"vmkeeper_media_job_seconds_sum {sum(seconds):.3f}",
              f"vmkeeper_media_job_seconds_count {len(seconds)}"]
    return "\n".join(lines) + "\n"

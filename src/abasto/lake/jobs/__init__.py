"""Lake jobs: recorded curate runs (:mod:`.runs`), running them (:mod:`.runner`) and starting them
from object-created events (:mod:`.triggers`) — the local Glue jobs, job-run history and the
S3 event → Lambda → ``StartJobRun`` path."""

from abasto.lake.jobs.runner import JobRunner, TableStatus, select_backfill
from abasto.lake.jobs.runs import InputFile, JobRun, JobRunStore, RunStatus, Trigger, job_runs_path
from abasto.lake.jobs.triggers import (
    LAKE_EVENTS_STREAM,
    RAW_OBJECTS_SUBJECT,
    ObjectRef,
    TableRouter,
    TriggerStats,
    TriggerWorker,
    announce_unseen,
    lake_streams,
    object_created_event,
    parse_object_created,
    publish_object_created,
)

__all__ = [
    "LAKE_EVENTS_STREAM",
    "RAW_OBJECTS_SUBJECT",
    "InputFile",
    "JobRun",
    "JobRunStore",
    "JobRunner",
    "ObjectRef",
    "RunStatus",
    "TableRouter",
    "TableStatus",
    "Trigger",
    "TriggerStats",
    "TriggerWorker",
    "announce_unseen",
    "job_runs_path",
    "lake_streams",
    "object_created_event",
    "parse_object_created",
    "publish_object_created",
    "select_backfill",
]

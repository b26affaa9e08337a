-- goqite v0.4.0's SQLite schema (maragu.dev/goqite, schema_sqlite.sql),
-- unchanged except for "if not exists" so that opening a data dir twice is
-- harmless. goqite's ReceiveTx, ExtendTx and DeleteTx run their own SQL on
-- it; Enqueue inserts the rows goqite's SendTx would, a batch at a time.
create table if not exists goqite (
  id text primary key default ('m_' || lower(hex(randomblob(16)))),
  created text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  updated text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  queue text not null,
  body blob not null,
  timeout text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  received integer not null default 0,
  priority integer not null default 0
) strict;

create trigger if not exists goqite_updated_timestamp after update on goqite begin
  update goqite set updated = strftime('%Y-%m-%dT%H:%M:%fZ') where id = old.id;
end;

create index if not exists goqite_queue_priority_created_idx on goqite (queue, priority desc, created);

-- sqlitequeue's additions.

-- When is the next message ready? (min(timeout) without a scan.) Partial on
-- "priority < 0", which every row here has (priority is minus the enqueue
-- time) but goqite's receive query does not say: SQLite can then only use
-- it for nextReady, and goqite's receive keeps its priority index instead of
-- range-scanning every ready row by timeout and sorting them.
drop index if exists sqlitequeue_goqite_queue_timeout_idx; -- an early build's, which did
create index if not exists sqlitequeue_goqite_ready_idx on goqite (queue, timeout) where priority < 0;

-- One row per task name: the Cloud Tasks bookkeeping goqite has no column
-- for, and the dedup memory that outlives the message. Times are unix nanos.
create table if not exists sqlitequeue_tasks (
  name text primary key,
  message_id text unique,                 -- goqite.id; null once finished
  header blob not null,                   -- JSON http.Header to send
  enqueued_at integer not null,
  eta integer not null,                   -- schedule time of the next attempt
  attempts integer not null default 0,    -- dispatches started
  executions integer not null default 0,  -- attempts answered with a non-5xx
  first_attempt integer,
  leased integer not null default 0,      -- 1 while a delivery is in flight
  finished_at integer                     -- set when delivered or given up
) strict;

create index if not exists sqlitequeue_tasks_finished_idx on sqlitequeue_tasks (finished_at) where finished_at is not null;
create index if not exists sqlitequeue_tasks_leased_idx on sqlitequeue_tasks (leased) where leased = 1;
create index if not exists sqlitequeue_tasks_unfinished_idx on sqlitequeue_tasks (enqueued_at) where finished_at is null;

-- The dispatch settings queue.Controller changes (SetRate, Pause, Resume),
-- one row, so that a restart keeps a slowed or paused queue slowed or
-- paused. rate is null until SetRate: the configured rate then applies.
-- configured_rate is the running owner's Config rate, written by Run, for
-- other processes' Control. version counts changes: Run polls the row and
-- applies a newer version, which is how relayctl queue, writing from
-- another process, reaches the running queue.
create table if not exists sqlitequeue_control (
  id integer primary key check (id = 1),
  rate real,
  configured_rate real,
  configured_burst integer,               -- the owner's burst (added to older files by addConfiguredBurst)
  paused integer not null default 0,
  by text not null default '',
  at integer not null default 0,          -- unix nanos of the last change
  version integer not null default 0
) strict;

"""Lua scripts of the Redis store: each state change (and its index upkeep) runs atomically.

Every script gets the key prefix as ``ARGV[1]``. Hash fields hold JSON text (see
:mod:`treadle.store.redis_codec`); the scripts compare those texts and never decode user data.
Times come from the server's ``TIME``, so leases are measured by one clock.

Indexes kept next to the rows (names after the prefix):

- ``runs``, ``runs:s:<status>``, ``runs:d:<definition>``: runs by ``<created µs>:<id>`` (lex)
- ``runs:fin``: finished runs scored by ``finished_at`` (retention)
- ``due:<priority>`` + ``prios``: queued tasks not yet announced, scored by ``available_at``
- ``redeliver``: queued tasks already announced, scored by ``published_at``
- ``queue:<queue>:<priority>`` + ``qprios:<queue>``: every queued task of a queue, scored by
  ``available_at`` (``claim_next`` reads the highest priority first; one set per priority
  because a float score cannot hold both priority and microseconds exactly)
- ``children:<parent id>``: a fan-out task's children scored by ``seq``
- ``task:<id>:attempts``: the attempt ids of a task (so deleting it finds them)
- ``run:<id>:layers``: a run's layer ids scored by priority
- ``runs:deadline``: unfinished runs with a ``deadline_at``, scored by it
- ``leases``: running attempts scored by ``lease_expires_at``
- ``unsettled``: run ids scored by how many finished tasks the coordinator has not looked at
"""

from __future__ import annotations

import json

from treadle.model.states import AttemptStatus, RunStatus, TaskStatus


def _j(value: str) -> str:
    """A Lua string literal holding the JSON text of ``value``."""
    return "'" + json.dumps(value) + "'"


def _set(values: list[str]) -> str:
    return "{" + ", ".join(f"[{_j(v)}] = true" for v in values) + "}"


_CONSTANTS = f"""
local T_QUEUED = {_j(TaskStatus.QUEUED)}
local T_RUNNING = {_j(TaskStatus.RUNNING)}
local T_FAILED = {_j(TaskStatus.FAILED)}
local A_RUNNING = {_j(AttemptStatus.RUNNING)}
local A_LOST = {_j(AttemptStatus.LOST)}
local TASK_TERMINAL = {_set([s.value for s in TaskStatus if s.terminal])}
local RUN_TERMINAL = {_set([s.value for s in RunStatus if s.terminal])}
local RUN_DEADLINED = {_set([s.value for s in RunStatus if not s.terminal])}
"""

_PRELUDE = (
    """
if redis.replicate_commands then redis.replicate_commands() end
local P = ARGV[1]
"""
    + _CONSTANTS
    + """
-- Server time in whole microseconds, as decimal text (exact, unlike a Lua number's tostring).
local function clock()
  local t = redis.call('TIME')
  return t[1] .. string.rep('0', 6 - #t[2]) .. t[2]
end

local function int_text(x)
  return string.format('%.0f', x)
end

local function jstr(s)
  return '"' .. s .. '"'
end

-- Bring a task's index entries in line with its fields.
local function reindex_task(id)
  local key = P .. 'task:' .. id
  local f = redis.call('HMGET', key, 'status', 'available_at', 'published_at', 'priority',
                       '_dp', '_pub', 'settled', '_u', '_run', 'queue', '_qq', '_qp')
  local status, avail, pub, prio, dp, inpub, settled, u, run, queue, qq, qp =
    f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]
  local want_q = status == T_QUEUED and tonumber(avail) ~= nil
  if qq and ((not want_q) or qq ~= queue or qp ~= prio) then
    local qkey = P .. 'queue:' .. qq .. ':' .. qp
    redis.call('ZREM', qkey, id)
    if redis.call('ZCARD', qkey) == 0 then redis.call('ZREM', P .. 'qprios:' .. qq, qp) end
    redis.call('HDEL', key, '_qq', '_qp')
  end
  if want_q then
    -- ZADD also moves the score when available_at changed (a retry's back-off).
    redis.call('ZADD', P .. 'queue:' .. queue .. ':' .. prio, avail, id)
    redis.call('ZADD', P .. 'qprios:' .. queue, prio, prio)
    redis.call('HSET', key, '_qq', queue, '_qp', prio)
  end
  local want_due, want_pub = false, false
  if status == T_QUEUED and tonumber(avail) then
    if tonumber(pub) == nil or tonumber(pub) < tonumber(avail) then
      want_due = true
    else
      want_pub = true
    end
  end
  if dp and ((not want_due) or dp ~= prio) then
    local due = P .. 'due:' .. dp
    redis.call('ZREM', due, id)
    if redis.call('ZCARD', due) == 0 then redis.call('ZREM', P .. 'prios', dp) end
    redis.call('HDEL', key, '_dp')
  end
  if want_due then
    redis.call('ZADD', P .. 'due:' .. prio, avail, id)
    redis.call('ZADD', P .. 'prios', prio, prio)
    redis.call('HSET', key, '_dp', prio)
  end
  if want_pub then
    redis.call('ZADD', P .. 'redeliver', pub, id)
    redis.call('HSET', key, '_pub', '1')
  elseif inpub then
    redis.call('ZREM', P .. 'redeliver', id)
    redis.call('HDEL', key, '_pub')
  end
  local want_u = settled == 'false' and TASK_TERMINAL[status] == true
  if want_u and not u then
    redis.call('ZINCRBY', P .. 'unsettled', 1, run)
    redis.call('HSET', key, '_u', '1')
  elseif u and not want_u then
    local left = redis.call('ZINCRBY', P .. 'unsettled', -1, run)
    if tonumber(left) <= 0 then redis.call('ZREM', P .. 'unsettled', run) end
    redis.call('HDEL', key, '_u')
  end
end

-- Bring a run's index entries in line with its fields.
local function reindex_run(id)
  local key = P .. 'run:' .. id
  local f = redis.call('HMGET', key, '_k', '_ik', 'status', '_s', 'definition_name', '_d',
                       'finished_at', 'deadline_at')
  local k, ik, status, is, def, idef, fin, dl = f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]
  if RUN_DEADLINED[status] and tonumber(dl) then
    redis.call('ZADD', P .. 'runs:deadline', dl, id)
  else
    redis.call('ZREM', P .. 'runs:deadline', id)
  end
  if ik and ik ~= k then
    redis.call('ZREM', P .. 'runs', ik)
    if is then redis.call('ZREM', P .. 'runs:s:' .. is, ik) end
    if idef then redis.call('ZREM', P .. 'runs:d:' .. idef, ik) end
    is, idef = false, false
  end
  redis.call('ZADD', P .. 'runs', 0, k)
  if is ~= status then
    if is then redis.call('ZREM', P .. 'runs:s:' .. is, k) end
    redis.call('ZADD', P .. 'runs:s:' .. status, 0, k)
  end
  if idef ~= def then
    if idef then redis.call('ZREM', P .. 'runs:d:' .. idef, k) end
    redis.call('ZADD', P .. 'runs:d:' .. def, 0, k)
  end
  redis.call('HSET', key, '_ik', k, '_s', status, '_d', def)
  if RUN_TERMINAL[status] and tonumber(fin) then
    redis.call('ZADD', P .. 'runs:fin', fin, id)
  else
    redis.call('ZREM', P .. 'runs:fin', id)
  end
end

-- Write a new task row (fields are ARGV[from..to]) with its run and parent indexes.
local function put_task(id, run, seq, from, to)
  local key = P .. 'task:' .. id
  redis.call('HSET', key, '_run', run, unpack(ARGV, from, to))
  redis.call('ZADD', P .. 'run:' .. run .. ':tasks', seq, id)
  local parent = redis.call('HGET', key, 'parent_id')
  if parent and parent ~= 'null' then
    local pid = cjson.decode(parent)
    redis.call('HSET', key, '_par', pid)
    redis.call('ZADD', P .. 'children:' .. pid, seq, id)
  end
  reindex_task(id)
end

-- Move one queued, due task to running under attempt aid; returns its row or nil.
local function claim_one(id, aid, worker, now, deadline)
  local key = P .. 'task:' .. id
  local f = redis.call('HMGET', key, 'status', 'available_at', 'run_id', '_run')
  if f[1] ~= T_QUEUED or not tonumber(f[2]) or tonumber(f[2]) > tonumber(now) then
    return nil
  end
  local number = redis.call('HINCRBY', key, 'attempt_count', 1)
  redis.call('HINCRBY', key, 'version', 1)
  redis.call('HSET', key, 'status', T_RUNNING, 'attempt_id', jstr(aid), 'started_at', now)
  reindex_task(id)
  redis.call('HSET', P .. 'attempt:' .. aid,
    'id', jstr(aid), 'task_id', jstr(id), 'run_id', f[3], 'number', number,
    'status', A_RUNNING, 'worker_id', worker, 'started_at', now,
    'lease_expires_at', deadline, 'finished_at', 'null', 'output', 'null', 'error', 'null',
    '_task', id)
  redis.call('ZADD', P .. 'leases', deadline, aid)
  redis.call('ZADD', P .. 'run:' .. f[4] .. ':attempts', now, aid)
  redis.call('SADD', key .. ':attempts', aid)
  return redis.call('HGETALL', key)
end

-- Delete a task with its attempts, logs and index entries.
local function drop_task(id)
  local key = P .. 'task:' .. id
  local f = redis.call('HMGET', key, '_run', '_par')
  if not f[1] then return end
  -- Mark the row as nothing an index wants, let reindex drop it, then delete it.
  redis.call('HSET', key, 'status', '"deleted"', 'settled', 'true')
  reindex_task(id)
  for _, aid in ipairs(redis.call('SMEMBERS', key .. ':attempts')) do
    redis.call('ZREM', P .. 'leases', aid)
    redis.call('ZREM', P .. 'run:' .. f[1] .. ':attempts', aid)
    redis.call('DEL', P .. 'attempt:' .. aid)
  end
  redis.call('ZREM', P .. 'run:' .. f[1] .. ':tasks', id)
  redis.call('SREM', P .. 'run:' .. f[1] .. ':logtasks', id)
  if f[2] then redis.call('ZREM', P .. 'children:' .. f[2], id) end
  redis.call('DEL', key, key .. ':logs', key .. ':attempts', P .. 'children:' .. id)
end

-- Apply one compare-and-set (fields ARGV[from..from+2n-1]) to the row at key; true if won.
local function cas(key, expected, from, n)
  if redis.call('HGET', key, 'version') ~= expected then return false end
  if n > 0 then redis.call('HSET', key, unpack(ARGV, from, from + 2 * n - 1)) end
  redis.call('HINCRBY', key, 'version', 1)
  return true
end
"""
)

# ARGV: prefix, run id ('' for none), n, run fields (2n), l, per layer: layer id, m, layer
# fields (2m), then per task: task id, run id, seq, m, task fields (2m).
# Returns 1, or 0 when any row exists already.
PUT_RUN_AND_TASKS = (
    _PRELUDE
    + """
local run_id, n = ARGV[2], tonumber(ARGV[3])
local i = 4 + 2 * n
local layers = {}
local l = tonumber(ARGV[i])
i = i + 1
for _ = 1, l do
  local m = tonumber(ARGV[i + 1])
  table.insert(layers, {ARGV[i], i + 2, i + 1 + 2 * m})
  i = i + 2 + 2 * m
end
local tasks = {}
while i <= #ARGV do
  local m = tonumber(ARGV[i + 3])
  table.insert(tasks, {ARGV[i], ARGV[i + 1], ARGV[i + 2], i + 4, i + 3 + 2 * m})
  i = i + 4 + 2 * m
end
-- Check everything before writing anything: a script is not rolled back on error.
if run_id ~= '' and redis.call('EXISTS', P .. 'run:' .. run_id) == 1 then return 0 end
for _, t in ipairs(tasks) do
  if redis.call('EXISTS', P .. 'task:' .. t[1]) == 1 then return 0 end
end
for _, x in ipairs(layers) do
  if redis.call('EXISTS', P .. 'layer:' .. x[1]) == 1 then return 0 end
end
if run_id ~= '' then
  redis.call('HSET', P .. 'run:' .. run_id, unpack(ARGV, 4, 3 + 2 * n))
  reindex_run(run_id)
end
for _, x in ipairs(layers) do
  local key = P .. 'layer:' .. x[1]
  redis.call('HSET', key, unpack(ARGV, x[2], x[3]))
  local f = redis.call('HMGET', key, 'run_id', 'priority')
  local run = cjson.decode(f[1])
  redis.call('HSET', key, '_run', run)
  redis.call('ZADD', P .. 'run:' .. run .. ':layers', f[2], x[1])
end
for _, t in ipairs(tasks) do
  put_task(t[1], t[2], t[3], t[4], t[5])
end
return 1
"""
)

# ARGV: prefix, run id, expected version, fields (pairs). Returns the new row or nil.
UPDATE_RUN = (
    _PRELUDE
    + """
local key = P .. 'run:' .. ARGV[2]
if redis.call('HGET', key, 'version') ~= ARGV[3] then return nil end
if #ARGV > 3 then redis.call('HSET', key, unpack(ARGV, 4)) end
redis.call('HINCRBY', key, 'version', 1)
reindex_run(ARGV[2])
return redis.call('HGETALL', key)
"""
)

# ARGV: prefix, then per change: task id, expected version, n, fields (2n). Returns won ids.
UPDATE_TASKS = (
    _PRELUDE
    + """
local won = {}
local i = 2
while i <= #ARGV do
  local id, expected, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if cas(P .. 'task:' .. id, expected, i + 3, n) then
    reindex_task(id)
    table.insert(won, id)
  end
  i = i + 3 + 2 * n
end
return won
"""
)

# ARGV: prefix, then per change: layer id, expected version, n, fields (2n). Returns won ids.
UPDATE_LAYERS = (
    _PRELUDE
    + """
local won = {}
local i = 2
while i <= #ARGV do
  local id, expected, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = P .. 'layer:' .. id
  if cas(key, expected, i + 3, n) then
    local f = redis.call('HMGET', key, '_run', 'priority')
    redis.call('ZADD', P .. 'run:' .. f[1] .. ':layers', f[2], id)
    table.insert(won, id)
  end
  i = i + 3 + 2 * n
end
return won
"""
)

# ARGV: prefix, task id, expected version, n, fields (2n), then per child: task id, run id,
# seq, m, fields (2m). Returns 1 if the change won (children written), 0 if it lost, -1 if a
# child exists already (nothing written).
EXPAND_TASK = (
    _PRELUDE
    + """
local id, expected, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = P .. 'task:' .. id
if redis.call('HGET', key, 'version') ~= expected then return 0 end
local tasks = {}
local i = 5 + 2 * n
while i <= #ARGV do
  local m = tonumber(ARGV[i + 3])
  if redis.call('EXISTS', P .. 'task:' .. ARGV[i]) == 1 then return -1 end
  table.insert(tasks, {ARGV[i], ARGV[i + 1], ARGV[i + 2], i + 4, i + 3 + 2 * m})
  i = i + 4 + 2 * m
end
cas(key, expected, 5, n)
reindex_task(id)
for _, t in ipairs(tasks) do
  put_task(t[1], t[2], t[3], t[4], t[5])
end
return 1
"""
)

# ARGV: prefix, task ids. Deletes them with their attempts and logs.
DELETE_TASKS = (
    _PRELUDE
    + """
for i = 2, #ARGV do drop_task(ARGV[i]) end
return 1
"""
)

# ARGV: prefix, published_at (JSON), task ids.
MARK_PUBLISHED = (
    _PRELUDE
    + """
for i = 3, #ARGV do
  local key = P .. 'task:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'published_at', ARGV[2])
    reindex_task(ARGV[i])
  end
end
return 1
"""
)

# ARGV: prefix, run id, with outputs ('1' or '0'), then the light field names.
# Returns {run row, {task values in field order, ...}, {task id, output, ...}}; {} if no run.
LOAD_RUN_STATE = (
    _PRELUDE
    + """
local rkey = P .. 'run:' .. ARGV[2]
local run = redis.call('HGETALL', rkey)
if #run == 0 then return {} end
local names = {}
for i = 4, #ARGV do table.insert(names, ARGV[i]) end
local states, outputs = {}, {}
for _, id in ipairs(redis.call('ZRANGE', rkey .. ':tasks', 0, -1)) do
  local key = P .. 'task:' .. id
  local row = redis.call('HMGET', key, unpack(names))
  if row[1] then
    table.insert(states, row)
    if ARGV[3] == '1' then
      local out = redis.call('HGET', key, 'output')
      if out and out ~= 'null' then
        table.insert(outputs, id)
        table.insert(outputs, out)
      end
    end
  end
end
return {run, states, outputs}
"""
)

# ARGV: prefix, n changes, per change (task id, expected version, m, fields (2m)), n settled,
# task ids, run id ('' for none), expected run version, m, run fields (2m), n events, per
# event (run id, kind, actor, detail: JSON). All or nothing at once; the events are recorded
# only if the run's compare-and-set won. Returns {won task ids, new run row or {}}.
APPLY_DECISION = (
    _PRELUDE
    + """
local i = 2
local won = {}
for _ = 1, tonumber(ARGV[i]) do
  local id, expected, m = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  if cas(P .. 'task:' .. id, expected, i + 4, m) then
    reindex_task(id)
    table.insert(won, id)
  end
  i = i + 3 + 2 * m
end
i = i + 1
for _ = 1, tonumber(ARGV[i]) do
  i = i + 1
  local key = P .. 'task:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'settled', 'true')
    reindex_task(ARGV[i])
  end
end
local run_id, expected, m = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
local fields_at = i + 4
i = i + 4 + 2 * m
local row = {}
local rkey = P .. 'run:' .. run_id
if run_id ~= '' and redis.call('HGET', rkey, 'version') == expected then
  if m > 0 then redis.call('HSET', rkey, unpack(ARGV, fields_at, fields_at + 2 * m - 1)) end
  redis.call('HINCRBY', rkey, 'version', 1)
  reindex_run(run_id)
  row = redis.call('HGETALL', rkey)
  local now = clock()
  for _ = 1, tonumber(ARGV[i]) do
    local id = redis.call('INCR', P .. 'seq:event')
    redis.call('RPUSH', P .. 'run:' .. ARGV[i + 1] .. ':events',
      '{"id":' .. id .. ',"at":' .. now .. ',"kind":' .. ARGV[i + 2] .. ',"actor":'
      .. ARGV[i + 3] .. ',"detail":' .. ARGV[i + 4] .. '}')
    i = i + 4
  end
end
return {won, row}
"""
)

# ARGV: prefix, task ids. Settled is bookkeeping: no version change.
MARK_SETTLED = (
    _PRELUDE
    + """
for i = 2, #ARGV do
  local key = P .. 'task:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'settled', 'true')
    reindex_task(ARGV[i])
  end
end
return 1
"""
)

# ARGV: prefix, worker id (JSON), lease µs, then pairs of task id, new attempt id.
# Returns {now, lease deadline, task row, task row, ...} for the tasks that were claimed.
CLAIM = (
    _PRELUDE
    + """
local now = clock()
local deadline = int_text(tonumber(now) + tonumber(ARGV[3]))
local out = {now, deadline}
for i = 4, #ARGV, 2 do
  local row = claim_one(ARGV[i], ARGV[i + 1], ARGV[2], now, deadline)
  if row then table.insert(out, row) end
end
return out
"""
)

# ARGV: prefix, queue (JSON), worker id (JSON), lease µs, then new attempt ids (one per task
# wanted). Claims queued, due tasks of the queue, highest priority first and inside one
# priority the longest waiting first. Returns like CLAIM.
CLAIM_NEXT = (
    _PRELUDE
    + """
local now = clock()
local deadline = int_text(tonumber(now) + tonumber(ARGV[4]))
local out = {now, deadline}
local queue, next_aid = ARGV[2], 5
for _, prio in ipairs(redis.call('ZREVRANGE', P .. 'qprios:' .. queue, 0, -1)) do
  local want = #ARGV - next_aid + 1
  if want <= 0 then break end
  local ids = redis.call('ZRANGEBYSCORE', P .. 'queue:' .. queue .. ':' .. prio, '-inf', now,
                         'LIMIT', 0, want)
  for _, id in ipairs(ids) do
    local row = claim_one(id, ARGV[next_aid], ARGV[3], now, deadline)
    if row then
      table.insert(out, row)
      next_aid = next_aid + 1
    end
  end
end
return out
"""
)

# ARGV: prefix, attempt ids. Returns those still the current attempt of a running task.
LIVE_ATTEMPTS = (
    _PRELUDE
    + """
local live = {}
for i = 2, #ARGV do
  local aid = ARGV[i]
  local task = redis.call('HGET', P .. 'attempt:' .. aid, '_task')
  if task then
    local t = redis.call('HMGET', P .. 'task:' .. task, 'status', 'attempt_id')
    if t[1] == T_RUNNING and t[2] == jstr(aid) then table.insert(live, aid) end
  end
end
return live
"""
)

# ARGV: prefix, then per outcome: attempt id, task id, attempt status, task status, output,
# error, retry_at (all but the ids JSON). Returns the accepted attempt ids.
FINISH_ATTEMPTS = (
    _PRELUDE
    + """
local now = clock()
local accepted = {}
for i = 2, #ARGV, 7 do
  local aid, id = ARGV[i], ARGV[i + 1]
  local akey = P .. 'attempt:' .. aid
  if redis.call('HGET', akey, 'status') == A_RUNNING then
    redis.call('HSET', akey, 'status', ARGV[i + 2], 'finished_at', now,
               'output', ARGV[i + 4], 'error', ARGV[i + 5])
    redis.call('ZREM', P .. 'leases', aid)
    table.insert(accepted, aid)
    local key = P .. 'task:' .. id
    local f = redis.call('HMGET', key, 'status', 'attempt_id')
    if f[1] == T_RUNNING and f[2] == jstr(aid) then
      redis.call('HSET', key, 'status', ARGV[i + 3], 'output', ARGV[i + 4],
                 'error', ARGV[i + 5], 'settled', 'false')
      redis.call('HINCRBY', key, 'version', 1)
      if ARGV[i + 3] == T_QUEUED then
        local at = now
        if ARGV[i + 6] ~= 'null' then at = ARGV[i + 6] end
        redis.call('HSET', key, 'queued_at', now, 'available_at', at,
                   'published_at', 'null', 'finished_at', 'null')
      else
        redis.call('HSET', key, 'finished_at', now)
      end
      reindex_task(id)
    end
  end
end
return accepted
"""
)

# ARGV: prefix, lease µs, attempt ids. Returns the attempts still live (their lease extended).
RENEW_LEASES = (
    _PRELUDE
    + """
local now = clock()
local deadline = int_text(tonumber(now) + tonumber(ARGV[2]))
local live = {}
for i = 3, #ARGV do
  local aid = ARGV[i]
  local akey = P .. 'attempt:' .. aid
  local a = redis.call('HMGET', akey, 'status', '_task')
  if a[1] == A_RUNNING then
    local t = redis.call('HMGET', P .. 'task:' .. a[2], 'status', 'attempt_id')
    if t[1] == T_RUNNING and t[2] == jstr(aid) then
      redis.call('HSET', akey, 'lease_expires_at', deadline)
      redis.call('ZADD', P .. 'leases', deadline, aid)
      table.insert(live, aid)
    end
  end
end
return live
"""
)

# ARGV: prefix, delivery limit, batch size. Returns the rows of the tasks it changed.
EXPIRE_LEASES = (
    _PRELUDE
    + """
local now = clock()
local limit = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(' .. now,
                           'LIMIT', 0, tonumber(ARGV[3]))
local changed = {}
for _, aid in ipairs(expired) do
  local akey = P .. 'attempt:' .. aid
  redis.call('ZREM', P .. 'leases', aid)
  local a = redis.call('HMGET', akey, 'status', '_task')
  if a[1] == A_RUNNING then
    redis.call('HSET', akey, 'status', A_LOST, 'finished_at', now,
               'error', '"lease expired: the worker stopped heartbeating"')
    local key = P .. 'task:' .. a[2]
    if redis.call('EXISTS', key) == 1 then
      local lost = redis.call('HINCRBY', key, '_lost', 1)
      local t = redis.call('HMGET', key, 'status', 'attempt_id')
      if t[1] == T_RUNNING and t[2] == jstr(aid) then
        if lost >= limit then
          redis.call('HSET', key, 'status', T_FAILED, 'finished_at', now, 'error',
            jstr('poison task: its worker was lost ' .. lost .. ' times (delivery limit '
                 .. limit .. ')'))
        else
          redis.call('HSET', key, 'status', T_QUEUED, 'queued_at', now, 'available_at', now,
                     'published_at', 'null')
        end
        redis.call('HSET', key, 'settled', 'false')
        redis.call('HINCRBY', key, 'version', 1)
        reindex_task(a[2])
        table.insert(changed, redis.call('HGETALL', key))
      end
    end
  end
end
return changed
"""
)

# ARGV: prefix, then per line: run id, task id, attempt id (JSON), stream (JSON), text (JSON).
APPEND_LOGS = (
    _PRELUDE
    + """
local now = clock()
for i = 2, #ARGV, 5 do
  local id = redis.call('INCR', P .. 'seq:log')
  local chunk = '{"id":' .. id .. ',"attempt_id":' .. ARGV[i + 2] .. ',"at":' .. now
    .. ',"stream":' .. ARGV[i + 3] .. ',"text":' .. ARGV[i + 4] .. '}'
  redis.call('ZADD', P .. 'task:' .. ARGV[i + 1] .. ':logs', id, chunk)
  redis.call('SADD', P .. 'run:' .. ARGV[i] .. ':logtasks', ARGV[i + 1])
end
return 1
"""
)

# ARGV: prefix, run id, kind (JSON), actor (JSON), detail (JSON).
ADD_EVENT = (
    _PRELUDE
    + """
local id = redis.call('INCR', P .. 'seq:event')
redis.call('RPUSH', P .. 'run:' .. ARGV[2] .. ':events',
  '{"id":' .. id .. ',"at":' .. clock() .. ',"kind":' .. ARGV[3] .. ',"actor":' .. ARGV[4]
  .. ',"detail":' .. ARGV[5] .. '}')
return id
"""
)

# ARGV: prefix, finished before (µs), batch size. Deletes up to a batch of finished runs with
# everything they own; returns how many.
PRUNE_RUNS = (
    _PRELUDE
    + """
local ids = redis.call('ZRANGEBYSCORE', P .. 'runs:fin', '-inf', '(' .. ARGV[2],
                       'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local rkey = P .. 'run:' .. id
  for _, tid in ipairs(redis.call('ZRANGE', rkey .. ':tasks', 0, -1)) do
    drop_task(tid)
  end
  for _, lid in ipairs(redis.call('ZRANGE', rkey .. ':layers', 0, -1)) do
    redis.call('DEL', P .. 'layer:' .. lid)
  end
  for _, aid in ipairs(redis.call('ZRANGE', rkey .. ':attempts', 0, -1)) do
    redis.call('ZREM', P .. 'leases', aid)
    redis.call('DEL', P .. 'attempt:' .. aid)
  end
  for _, tid in ipairs(redis.call('SMEMBERS', rkey .. ':logtasks')) do
    redis.call('DEL', P .. 'task:' .. tid .. ':logs')
  end
  local f = redis.call('HMGET', rkey, '_ik', '_s', '_d')
  if f[1] then
    redis.call('ZREM', P .. 'runs', f[1])
    if f[2] then redis.call('ZREM', P .. 'runs:s:' .. f[2], f[1]) end
    if f[3] then redis.call('ZREM', P .. 'runs:d:' .. f[3], f[1]) end
  end
  redis.call('ZREM', P .. 'runs:fin', id)
  redis.call('ZREM', P .. 'runs:deadline', id)
  redis.call('DEL', rkey, rkey .. ':tasks', rkey .. ':attempts', rkey .. ':logtasks',
             rkey .. ':events', rkey .. ':layers')
end
return #ids
"""
)

# ARGV: prefix, name, version, record (JSON). Returns 1, or 0 when that version exists.
PUT_DEFINITION = (
    _PRELUDE
    + """
if redis.call('HSETNX', P .. 'def:' .. ARGV[2], ARGV[3], ARGV[4]) == 0 then return 0 end
local latest = redis.call('HGET', P .. 'deflatest', ARGV[2])
if not latest or tonumber(latest) < tonumber(ARGV[3]) then
  redis.call('HSET', P .. 'deflatest', ARGV[2], ARGV[3])
end
return 1
"""
)
